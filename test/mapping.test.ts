// The one mapping table (src/core/table.ts) against the project's mapping document (docs/mapping.md),
// and `yotpo-insider mapping [--json]` (SPEC §1, §3): every row, in order, with its panel type.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { describeParamSource, describeSource, mappingDocument, runMapping, TYPES_ARE_FIXED } from '../src/commands/mapping.js';
import { requiredSchemaFromTable } from '../src/core/schema.js';
import {
  EVENT_NAMES,
  EVENT_PARAMS,
  EVENT_TIMESTAMP_PATHS,
  INSIDER_TYPE,
  MEMBER_EMAIL_PATHS,
  OPT_IN_TIMESTAMP_PATH,
  USER_ATTRIBUTES,
} from '../src/core/table.js';
import type { Io } from '../src/pipeline/report.js';
import { markdownTableRows } from './helpers.js';

const DOC = readFileSync(fileURLToPath(new URL('../docs/mapping.md', import.meta.url)), 'utf8');

const backticked = (cell: string) => [...cell.matchAll(/`([^`]*)`/g)].map((match) => match[1]!);

function runIo(): { io: Io; out: () => string } {
  let out = '';
  const sink = (append: (text: string) => void) =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        append(chunk.toString('utf8'));
        done();
      },
    });
  const io: Io = { stdout: sink((text) => (out += text)), stderr: sink(() => undefined), stderrIsTty: false, env: {}, cwd: tmpdir() };
  return { io, out: () => out };
}

describe('the table matches docs/mapping.md', () => {
  const attributeRows = markdownTableRows(DOC, /^## 2\. /, /^Insider attribute$/);
  const paramRows = markdownTableRows(DOC, /^## 5\. /, /^Insider event param$/);
  const eventRows = markdownTableRows(DOC, /^## 5\. /, /^Yotpo `name`$/);

  test('§2: every user attribute in order, where it goes, its type and its panel type', () => {
    assert.equal(attributeRows.length, USER_ATTRIBUTES.length);
    USER_ATTRIBUTES.forEach((row, index) => {
      const [name, where, , type, panelType] = attributeRows[index]!;
      assert.deepEqual(backticked(name!), [row.name], `row ${index + 1}`);
      assert.equal(where, row.where, row.name);
      assert.equal(type, row.type, row.name);
      assert.equal(panelType, row.where === 'custom' ? row.insiderType : '— (default)', row.name);
    });
    assert.equal(USER_ATTRIBUTES.filter((row) => row.where === 'custom').length, 39);
  });

  test('§2: every source path, both sides of each ??, REST name first', () => {
    USER_ATTRIBUTES.forEach((row, index) => {
      const source = attributeRows[index]![2]!;
      if (row.source.kind === 'reviews') assert.match(source, /^reviews aggregate/, row.name);
      else if (row.source.kind === 'dateParts') assert.equal(backticked(source).slice(0, 3).join(', '), describeSource(row), row.name);
      else assert.equal(backticked(source)[0], describeSource(row), row.name);
    });
  });

  test('§5: every event parameter in order, its source, type and panel type', () => {
    assert.equal(paramRows.length, EVENT_PARAMS.length);
    EVENT_PARAMS.forEach((row, index) => {
      const [name, source, type, panelType] = paramRows[index]!;
      assert.deepEqual(backticked(name!), [row.name]);
      const [paths, sharePaths] = backticked(source!);
      assert.equal(paths, row.paths.join(' ?? '), row.name);
      assert.equal(sharePaths, row.shareEventPaths?.join(' ?? '), `${row.name} in referral-share events`);
      assert.equal(type, row.type, row.name);
      assert.equal(panelType, row.insiderType, row.name);
    });
  });

  test('§5: both event tables, row by row: name, topics and Insider event (or the skip)', () => {
    assert.equal(eventRows.length, EVENT_NAMES.length);
    EVENT_NAMES.forEach((row, index) => {
      const [yotpoName, topics, insider] = eventRows[index]!;
      assert.equal(yotpoName, row.yotpoName ?? '', `row ${index + 1}`);
      assert.deepEqual(
        topics!
          .split(',')
          .map((topic) => topic.trim())
          .filter(Boolean),
        [...row.topics],
        `row ${index + 1}`,
      );
      if (row.insiderName === null) assert.match(insider!, /^— merchant-only/);
      else assert.deepEqual(backticked(insider!), [row.insiderName]);
    });
    const added = EVENT_NAMES.filter(
      (row) => row.topics.includes('swell/account/created') || row.topics.includes('swell/redemption/reminder'),
    );
    assert.deepEqual(
      added.map((row) => row.insiderName),
      ['redemption_reminder', 'account_created'],
    );
  });

  test('§1 member email and §5 timestamp precedence are the table constants', () => {
    assert.ok(DOC.includes(`\`${MEMBER_EMAIL_PATHS.join(' ?? ')}\``), 'member email precedence');
    const precedence = /\*\*Event timestamp\*\*, the first present of:([^]*?)A line with none/.exec(DOC);
    assert.ok(precedence, 'the timestamp paragraph');
    assert.deepEqual(backticked(precedence[1]!), [...EVENT_TIMESTAMP_PATHS, OPT_IN_TIMESTAMP_PATH, 'received_at']);
  });

  test('the panel types: an array attribute is created as array, everything else as its own type', () => {
    assert.deepEqual(INSIDER_TYPE, { string: 'string', number: 'number', boolean: 'boolean', date: 'date', 'string[]': 'array' });
    assert.equal(USER_ATTRIBUTES.find((row) => row.name === 'yotpo_top_topics')!.insiderType, 'array');
    for (const row of [...USER_ATTRIBUTES, ...EVENT_PARAMS]) assert.equal(row.insiderType, INSIDER_TYPE[row.type], row.name);
  });

  test("the schema check requires exactly the table's custom attributes, events and params with these types", () => {
    const required = requiredSchemaFromTable();
    assert.deepEqual(
      required.attributes,
      USER_ATTRIBUTES.filter((row) => row.where === 'custom').map((row) => ({ name: row.name, type: row.insiderType })),
    );
    const events = EVENT_NAMES.flatMap((row) => (row.insiderName ? [row.insiderName] : []));
    assert.deepEqual(
      required.events.map((event) => event.name),
      [...new Set(events)],
    );
    for (const event of required.events) {
      assert.deepEqual(
        event.params,
        EVENT_PARAMS.map((row) => ({ name: row.name, type: row.insiderType })),
        event.name,
      );
    }
  });
});

describe('yotpo-insider mapping', () => {
  test('--json: every row, the panel type of every custom attribute and param, the budgets and the warning', () => {
    const { io, out } = runIo();
    assert.equal(runMapping({ json: true }, io), 0);
    const doc = JSON.parse(out());
    assert.deepEqual(doc, JSON.parse(JSON.stringify(mappingDocument())));
    assert.deepEqual(
      doc.attributes.map((a: { insider: string }) => a.insider),
      USER_ATTRIBUTES.map((row) => row.name),
    );
    for (const attribute of doc.attributes as { insider: string; where: string; insider_type?: string }[]) {
      const row = USER_ATTRIBUTES.find((r) => r.name === attribute.insider)!;
      assert.equal(attribute.insider_type, row.where === 'custom' ? row.insiderType : undefined, attribute.insider);
    }
    assert.deepEqual(
      doc.event_params.map((p: { insider: string; insider_type: string; yotpo: string }) => [p.insider, p.insider_type, p.yotpo]),
      EVENT_PARAMS.map((row) => [row.name, row.insiderType, describeParamSource(row)]),
    );
    assert.equal(doc.custom_attributes_to_create.length, 39);
    assert.deepEqual(
      doc.custom_attributes_to_create.find((a: { name: string }) => a.name === 'yotpo_top_topics'),
      { name: 'yotpo_top_topics', type: 'array' },
    );
    assert.equal(doc.custom_event_params_to_create.length, EVENT_PARAMS.length);
    assert.ok(doc.custom_events_to_create.includes('account_created'));
    assert.equal(doc.custom_attribute_limit, 80);
    assert.equal(doc.custom_attributes_used, 39);
    assert.equal(doc.custom_event_param_limit, 80);
    assert.match(doc.types_fixed_once_created, /cannot change the type/);
    assert.ok(
      doc.events.some(
        (e: { insider: string | null; yotpo_topics: string[] }) =>
          e.insider === null && e.yotpo_topics.includes('swell/redemption_code/below_threshold'),
      ),
    );
  });

  test('the listing names the type to choose for every custom attribute and param, and warns that types are fixed', () => {
    const { io, out } = runIo();
    assert.equal(runMapping({ json: false }, io), 0);
    const text = out();
    const lines = text.split('\n');
    for (const row of [...USER_ATTRIBUTES.filter((r) => r.where === 'custom'), ...EVENT_PARAMS]) {
      assert.ok(
        lines.some((line) => new RegExp(`^${row.name}\\s+${row.insiderType}$`).test(line)),
        `a "${row.name}  ${row.insiderType}" line to create it with`,
      );
    }
    assert.ok(text.includes(`warning: ${TYPES_ARE_FIXED}`));
    assert.match(text, /\b39\b[^\n]*\b80\b/, 'the count vs the budget');
  });
});
