// Redaction (SPEC §2): a registered secret never survives in any form a message can carry it (raw,
// inside a JSON string, URL-encoded) nor in any letter case; token query values and credential
// headers are masked; the Insider partner name is an identifier and is shown.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { redact, registerSecret, secretForms } from '../src/io/redact.js';

// Characters that escaping or encoding changes: quote, backslash, slash, plus, percent, space, non-ASCII.
const AWKWARD = 'k3y"with\\all/the+odd%chars and é金🥇';
const GUID = 'Ab12Cd34Ef56Gh78';
const PARTNER = 'acmebrand';
registerSecret(AWKWARD);
registerSecret(GUID);

/** Every way the secret can reach a message. */
function carriers(secret: string): Record<string, string> {
  return {
    raw: `request failed with key ${secret} (retrying)`,
    'JSON body': JSON.stringify({ error: 'bad key', key: secret }),
    'JSON with ASCII escapes': JSON.stringify({ key: secret }).replace(
      /[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    ),
    'JSON with escaped slashes': JSON.stringify({ key: secret }).replace(/\//g, '\\/'),
    'JSON inside JSON': JSON.stringify({ body: JSON.stringify({ key: secret }) }),
    'URL query (encodeURIComponent)': `GET https://api.example.com/v1/x?key=${encodeURIComponent(secret)}&page=2`,
    'URL query, lower-case hex': `GET /v1/x?key=${encodeURIComponent(secret).replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase())}`,
    'form body (URLSearchParams)': new URLSearchParams({ client_secret: secret, grant_type: 'client_credentials' }).toString(),
    'upper case': `key ${secret.toUpperCase()}`,
    'lower case': `key ${secret.toLowerCase()}`,
  };
}

describe('registered secrets', () => {
  for (const secret of [AWKWARD, GUID]) {
    test(`no form of ${JSON.stringify(secret)} survives`, () => {
      const forms = secretForms(secret);
      for (const [carrier, text] of Object.entries(carriers(secret))) {
        const redacted = redact(text);
        assert.match(redacted, /\[REDACTED\]/, carrier);
        for (const form of forms)
          assert.ok(!redacted.toLowerCase().includes(form.toLowerCase()), `${carrier}: ${form} left in ${redacted}`);
      }
    });
  }

  test('a secret inside a longer token is still masked; the words around it are kept', () => {
    assert.equal(redact(`prefix-${GUID}-suffix`), 'prefix-[REDACTED]-suffix');
    assert.equal(redact(`x${GUID}y`), 'x[REDACTED]y');
  });

  test('a short value (under 8 characters) is masked only as a whole word; under 4 it is not registered', () => {
    registerSecret('Sh0rt');
    assert.equal(redact('token Sh0rt, SH0RT'), 'token [REDACTED], [REDACTED]');
    assert.equal(redact('Sh0rter words stay'), 'Sh0rter words stay');
    registerSecret('abc');
    assert.equal(redact('abc'), 'abc');
  });
});

describe('token patterns', () => {
  test('utoken, access_token and token query values; token and secret JSON fields', () => {
    assert.equal(redact('GET /v1/apps/x/reviews?utoken=abc.def&page=2'), 'GET /v1/apps/x/reviews?utoken=[REDACTED]&page=2');
    assert.equal(redact('GET /x?access_token=t0k#frag'), 'GET /x?access_token=[REDACTED]#frag');
    assert.equal(redact('POST /webhooks/yotpo?token=hook-secret'), 'POST /webhooks/yotpo?token=[REDACTED]');
    assert.equal(redact('{"access_token":"tok","token_type":"bearer"}'), '{"access_token":"[REDACTED]","token_type":"bearer"}');
    assert.equal(redact('{"client_id":"app","client_secret":"s3cr3t"}'), '{"client_id":"app","client_secret":"[REDACTED]"}');
  });

  test('credential headers are masked; the partner name header is shown', () => {
    const headers = JSON.stringify({
      'x-partner-name': PARTNER,
      'x-request-token': 'insider-key',
      'x-api-key': 'loyalty-key',
      'x-guid': 'g',
    });
    const redacted = redact(`headers: ${headers}`);
    assert.match(redacted, /"x-partner-name":"acmebrand"/);
    assert.doesNotMatch(redacted, /insider-key|loyalty-key|"x-guid":"g"/);
    assert.equal(redact("{ 'x-api-key': 'k1' }"), "{ 'x-api-key': '[REDACTED]' }");
    assert.equal(redact('Authorization: Bearer hook-token'), 'Authorization: Bearer [REDACTED]');
    assert.equal(redact('x-webhook-token: hook-token'), 'x-webhook-token: [REDACTED]');
  });

  test('the partner name is not a secret: messages that name it keep it', () => {
    const message = `Insider rejected the partner ${PARTNER} (X-PARTNER-NAME: ${PARTNER}): Partner is invalid.`;
    assert.equal(redact(message), message);
  });
});
