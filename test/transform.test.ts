import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { USER_ATTRIBUTES } from '../src/core/table.js';
import { InvalidUtf8Text, NonFiniteNumber } from '../src/core/canonical.js';
import { flattenAttributes, mapAttributes, mapUser, normaliseEmail, toInsiderUser, type FieldWarnings } from '../src/core/transform.js';
import { round2, toBoolean, toDate, toDateFromParts, toNumber, toStringList, toText } from '../src/core/values.js';

const map = (customer: unknown, placeholderYear?: number) => {
  const warnings: FieldWarnings = new Map();
  const attributes = mapAttributes([customer], undefined, placeholderYear ? { placeholderYear } : {}, warnings);
  return { attributes, warnings: Object.fromEntries(warnings) };
};

/** A representative REST value for each source-read attribute, and what Insider should get. */
const REPRESENTATIVE: Record<string, [Record<string, unknown>, unknown]> = {
  name: [{ first_name: 'Zoë' }, 'Zoë'],
  surname: [{ last_name: '山田' }, '山田'],
  birthday: [{ birthday_year: 1990, birthday_month: 5, birth_day: 8 }, '1990-05-08T00:00:00Z'],
  yotpo_points_earned: [{ points_earned: 1200 }, 1200],
  yotpo_point_balance: [{ points_balance: '-35' }, -35],
  yotpo_total_redemptions: [{ total_redemptions: 3 }, 3],
  yotpo_total_points_redeemed: [{ total_points_redeemed: 450 }, 450],
  yotpo_vip_tier_name: [{ vip_tier_name: 'Gold' }, 'Gold'],
  yotpo_successful_referrals: [{ successful_referrals: 2 }, 2],
  yotpo_referrals_made_and_clicked: [{ referrals_made_and_clicked: 7 }, 7],
  yotpo_is_referred_by_other_customer: [{ is_referred_by_other_customer: true }, true],
  yotpo_amount_spent_cents: [{ vip_tier_actions_completed: { amount_spent_cents: 52000 } }, 52000],
  yotpo_purchases_made: [{ vip_tier_actions_completed: { purchases_made: 4 } }, 4],
  yotpo_total_spend_cents: [{ total_spend_cents: 99900 }, 99900],
  yotpo_total_purchases: [{ total_purchases: 9 }, 9],
  yotpo_perks_redeemed: [{ perks_redeemed: 2 }, 2],
  yotpo_last_purchase_at: [{ last_purchase_at: '2024-04-25T15:05:00+02:00' }, '2024-04-25T13:05:00Z'],
  yotpo_points_expire_at: [{ points_expire_at: '2025-01-01' }, '2025-01-01T00:00:00Z'],
  yotpo_coupon_expires_at: [{ expires_at: '2025-02-03T04:05:06.789Z' }, '2025-02-03T04:05:06Z'],
  yotpo_coupon_expired: [{ expired: false }, false],
  yotpo_marketing_accepted: [{ accepts_marketing: 'true' }, true],
  yotpo_loyalty_opt_in: [{ opt_in: true }, true],
  yotpo_loyalty_opt_in_date: [{ opted_in_at: '2023-06-01T10:00:00' }, '2023-06-01T10:00:00Z'],
  yotpo_credit_balance: [{ credit_balance: '$2,620' }, '$2,620'],
  yotpo_is_affiliate: [{ is_affiliate: false }, false],
  yotpo_vip_tier_ends_at: [{ vip_tier_expiration: '2026-12-31T23:59:59Z' }, '2026-12-31T23:59:59Z'],
  anniversary_date: [{ anniversary_year: 2020, anniversary_month: 2, anniversary_day: 29 }, '2020-02-29T00:00:00Z'],
  yotpo_referral_code_expired: [{ referral_code: { code: 'a', expired: true } }, true],
  yotpo_referral_link: [{ referral_link: { code: 'a', link: 'https://rwrd.io/a' } }, 'https://rwrd.io/a'],
  yotpo_loyalty_next_points_expire_on: [{ next_points_expire_on: '2026-03-01' }, '2026-03-01T00:00:00Z'],
  yotpo_loyalty_next_points_expire_amount: [{ next_points_expire_amount: '50' }, 50],
  yotpo_days_to_point_expiration: [{ days_to_point_expiration: 30 }, 30],
  yotpo_credit_balance_in_customer_c: [{ credit_balance_in_customer_currency: '€10,00' }, '€10,00'],
  amount_cents_in_customer_c_to_mt_vip: [{ vip_tier_maintenance_requirements: { amount_cents_needed_in_customer_currency: 1500 } }, 1500],
};

describe('mapping table → transform', () => {
  test('every attribute read from a Yotpo record has a representative case here', () => {
    const fromRecords = USER_ATTRIBUTES.filter((row) => row.source.kind !== 'reviews').map((row) => row.name);
    assert.deepEqual(Object.keys(REPRESENTATIVE).sort(), [...fromRecords].sort());
  });

  for (const [name, [customer, expected]] of Object.entries(REPRESENTATIVE)) {
    test(`${name}: mapped when present, omitted when absent, null or empty`, () => {
      assert.deepEqual(map(customer).attributes, { [name]: expected });
      for (const empty of [null, '']) {
        const blanked = JSON.parse(JSON.stringify(customer, (_k, v) => (typeof v === 'object' ? v : empty)));
        const result = map(blanked);
        assert.equal(name in result.attributes, false, `${name} with ${JSON.stringify(blanked)}`);
      }
      assert.deepEqual(map({}).attributes, {});
    });
  }

  test('fallback sources are read when the first is absent (REST name first)', () => {
    assert.deepEqual(map({ point_balance: 10 }).attributes, { yotpo_point_balance: 10 });
    assert.deepEqual(map({ points_balance: 5, point_balance: 10 }).attributes, { yotpo_point_balance: 5 });
    assert.deepEqual(map({ amount_spent_cents: 7 }).attributes, { yotpo_amount_spent_cents: 7 });
    assert.deepEqual(map({ birthday_month: 1, birthday_day: 2, birthday_year: 2000 }).attributes, {
      birthday: '2000-01-02T00:00:00Z',
    });
    assert.deepEqual(map({ is_opt_in: 'false', loyalty_opt_in_date: '2024-01-01' }).attributes, {
      yotpo_loyalty_opt_in: false,
      yotpo_loyalty_opt_in_date: '2024-01-01T00:00:00Z',
    });
    assert.deepEqual(map({ referral_link: 'https://rwrd.io/x' }).attributes, { yotpo_referral_link: 'https://rwrd.io/x' });
    assert.deepEqual(map({ referral_link: { link: 'https://rwrd.io/x', expired: false }, referral_code: { expired: true } }).attributes, {
      yotpo_referral_code_expired: false,
      yotpo_referral_link: 'https://rwrd.io/x',
    });
    assert.deepEqual(map({ perk: { expires_at: '2025-01-01', expired: true } }).attributes, {
      yotpo_coupon_expires_at: '2025-01-01T00:00:00Z',
      yotpo_coupon_expired: true,
    });
    assert.deepEqual(map({ vip_tier_ends_at: '2025-01-01' }).attributes, { yotpo_vip_tier_ends_at: '2025-01-01T00:00:00Z' });
    assert.deepEqual(map({ vip_tier_maintenance_requirements: { amount_cents_in_customer_currency: '99' } }).attributes, {
      amount_cents_in_customer_c_to_mt_vip: 99,
    });
  });

  test('a webhook member object is read before the payload top level', () => {
    const warnings: FieldWarnings = new Map();
    const attributes = mapAttributes(
      [
        { first_name: 'Member', points_balance: 1 },
        { first_name: 'Top', referral_link: 'https://rwrd.io/m' },
      ],
      undefined,
      {},
      warnings,
    );
    assert.deepEqual(attributes, { name: 'Member', yotpo_point_balance: 1, yotpo_referral_link: 'https://rwrd.io/m' });
  });

  test('wrong types are omitted and counted, never sent', () => {
    const { attributes, warnings } = map({
      points_earned: 'lots',
      vip_tier_name: { name: 'Gold' },
      is_affiliate: 'yes',
      last_purchase_at: 'last tuesday',
      points_balance: [1],
      credit_balance: true,
    });
    assert.deepEqual(attributes, {});
    assert.deepEqual(warnings, {
      'yotpo_points_earned: not a number': 1,
      'yotpo_vip_tier_name: not a string': 1,
      'yotpo_is_affiliate: not a boolean': 1,
      'yotpo_last_purchase_at: unparseable date': 1,
      'yotpo_point_balance: not a number': 1,
      'yotpo_credit_balance: not a string': 1,
    });
  });

  test('numbers where a string is expected become their decimal string', () => {
    assert.deepEqual(map({ vip_tier_name: 3 }).attributes, { yotpo_vip_tier_name: '3' });
  });

  test('review attributes are merged as given', () => {
    const attributes = mapAttributes([{ first_name: 'A' }], { yotpo_total_reviews: 0 }, {}, new Map());
    assert.deepEqual(attributes, { name: 'A', yotpo_total_reviews: 0 });
  });
});

describe('dates (MAPPING §3)', () => {
  const cases: [string, string][] = [
    ['2024-04-25', '2024-04-25T00:00:00Z'],
    ['2024-04-25T13:05:00', '2024-04-25T13:05:00Z'],
    ['2024-04-25 13:05', '2024-04-25T13:05:00Z'],
    ['2024-04-25T13:05:00Z', '2024-04-25T13:05:00Z'],
    ['2024-04-25T13:05:00.123Z', '2024-04-25T13:05:00Z'],
    ['2024-04-25T13:05:00.123456', '2024-04-25T13:05:00Z'],
    ['2024-04-25T15:05:00+02:00', '2024-04-25T13:05:00Z'],
    ['2024-04-25T01:05:00-0300', '2024-04-25T04:05:00Z'],
    ['2024-04-25T23:30:00-01:00', '2024-04-26T00:30:00Z'],
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00Z'],
  ];
  for (const [input, expected] of cases) {
    test(`${input} → ${expected}`, () => assert.deepEqual(toDate(input), { ok: expected }));
  }
  test('impossible and unparseable dates are warnings', () => {
    assert.deepEqual(toDate('2023-02-29'), { warning: 'impossible date' });
    assert.deepEqual(toDate('2024-13-01T00:00:00Z'), { warning: 'impossible date' });
    assert.deepEqual(toDate('2024-01-01T24:00:00Z'), { warning: 'impossible date' });
    assert.deepEqual(toDate('25/04/2024'), { warning: 'unparseable date' });
    assert.deepEqual(toDate(1714050300), { warning: 'not a date' });
    assert.deepEqual(toDate(''), { absent: true });
  });
  test('birthday from parts: no invented year, placeholder on request, impossible omitted', () => {
    assert.deepEqual(toDateFromParts(null, 5, 8), { warning: 'no year' });
    assert.deepEqual(toDateFromParts(null, '5', '8', 1900), { ok: '1900-05-08T00:00:00Z' });
    assert.deepEqual(toDateFromParts(1990, 2, 30), { warning: 'impossible date' });
    assert.deepEqual(toDateFromParts(undefined, 2, 29, 1900), { warning: 'impossible date' });
    assert.deepEqual(toDateFromParts(1990, 2, undefined), { warning: 'incomplete date' });
    assert.deepEqual(toDateFromParts(undefined, undefined, undefined), { absent: true });
    assert.deepEqual(toDateFromParts(1990, 'May', 1), { warning: 'not a date' });
    const { attributes, warnings } = map({ birthday_month: 5, birth_day: 8 });
    assert.deepEqual(attributes, {});
    assert.deepEqual(warnings, { 'birthday: no year': 1 });
    assert.deepEqual(map({ birthday_month: 5, birth_day: 8 }, 1900).attributes, { birthday: '1900-05-08T00:00:00Z' });
  });
});

describe('values', () => {
  test('numeric strings become numbers; other strings do not', () => {
    assert.deepEqual(toNumber('120'), { ok: 120 });
    assert.deepEqual(toNumber(' -3.5 '), { ok: -3.5 });
    assert.deepEqual(toNumber('$2,620'), { warning: 'not a number' });
    assert.deepEqual(toNumber(Number.NaN), { warning: 'not a finite number' });
    assert.deepEqual(toNumber(null), { absent: true });
  });
  test('text is trimmed; booleans accept true/false strings only', () => {
    assert.deepEqual(toText('  Gold '), { ok: 'Gold' });
    assert.deepEqual(toBoolean('TRUE'), { ok: true });
    assert.deepEqual(toBoolean(1), { warning: 'not a boolean' });
  });
  test('round2 rounds half away from zero', () => {
    assert.equal(round2(1.005), 1.01);
    assert.equal(round2(4.666666), 4.67);
    assert.equal(round2(-1.005), -1.01);
    assert.equal(round2(2.5), 2.5);
    assert.equal(round2(0.125), 0.13);
  });
});

describe('identity and shape (MAPPING §1)', () => {
  test('emails are trimmed and lower-cased; invalid ones refused', () => {
    assert.equal(normaliseEmail('  Jane.Doe@Example.COM '), 'jane.doe@example.com');
    assert.equal(normaliseEmail('not-an-email'), undefined);
    assert.equal(normaliseEmail('a b@c.de'), undefined);
    assert.equal(normaliseEmail('a@b'), undefined);
    assert.equal(normaliseEmail(42), undefined);
  });
  test('defaults at the root, custom under custom, email in both places; never an empty custom', () => {
    const user = toInsiderUser('a@b.co', { name: 'A', birthday: '1990-01-01T00:00:00Z', yotpo_total_reviews: 2 });
    assert.deepEqual(user, {
      identifiers: { email: 'a@b.co' },
      attributes: { email: 'a@b.co', name: 'A', birthday: '1990-01-01T00:00:00Z', custom: { yotpo_total_reviews: 2 } },
      not_append: true,
    });
    assert.deepEqual(toInsiderUser('a@b.co', { name: 'A' }).attributes, { email: 'a@b.co', name: 'A' });
    assert.deepEqual(flattenAttributes(user), { name: 'A', birthday: '1990-01-01T00:00:00Z', yotpo_total_reviews: 2 });
  });
});

describe('not_append (SPEC §3)', () => {
  test('every user built carries not_append: true, so an array attribute is replaced, never grown', () => {
    const built = [
      toInsiderUser('a@b.co', {}),
      toInsiderUser('a@b.co', { yotpo_top_topics: ['fit'] }),
      mapUser('a@b.co', [{ first_name: 'A' }], { yotpo_top_topics: ['fit'] }, {}, new Map()),
      mapUser('a@b.co', [{}], undefined, {}, new Map()),
    ];
    for (const user of built) assert.equal(user.not_append, true, JSON.stringify(user));
    assert.equal(JSON.parse(JSON.stringify(built[2])).not_append, true, 'it survives serialisation');
  });
});

describe('values the lossless parser marks (MAPPING §5 Numbers)', () => {
  test('an integer beyond 2^53 keeps every digit as text, becomes the nearest double as a number', () => {
    const big = 12345678901234567891n;
    assert.deepEqual(toText(big), { ok: '12345678901234567891' });
    assert.deepEqual(toNumber(big), { ok: 12345678901234567000 });
    assert.deepEqual(toNumber(10n ** 400n), { warning: 'not a finite number' });
  });

  test('a literal no double holds, or text that says so, is omitted with a warning, never null', () => {
    const huge = new NonFiniteNumber('1e400');
    assert.deepEqual(toNumber(huge), { warning: 'not a finite number' });
    assert.deepEqual(toText(huge), { warning: 'not a finite number' });
    assert.deepEqual(toNumber('1e400'), { warning: 'not a finite number' });
    assert.deepEqual(toNumber(Number.POSITIVE_INFINITY), { warning: 'not a finite number' });
  });

  test('text that was not UTF-8 is omitted with an invalid UTF-8 warning, whatever the type', () => {
    const mangled = new InvalidUtf8Text('Zo\uFFFD');
    for (const coerce of [toText, toNumber, toBoolean, toDate, toStringList]) {
      assert.deepEqual(coerce(mangled), { warning: 'invalid UTF-8' }, coerce.name);
    }
    assert.deepEqual(toStringList(['fit', mangled]), { warning: 'invalid UTF-8' });
    const warnings: FieldWarnings = new Map();
    const attributes = mapAttributes([{ first_name: mangled, last_name: 'Doe' }], undefined, {}, warnings);
    assert.deepEqual(attributes, { surname: 'Doe' });
    assert.deepEqual(Object.fromEntries(warnings), { 'name: invalid UTF-8': 1 });
  });
});
