/**
 * Deterministic generated data for the sandbox.
 *
 * Customer i and review j are pure functions of (seed, index): nothing is held in memory, so a
 * sandbox with a million customers costs no more than one with ten, and tests can compute the
 * expected records without asking the server.
 *
 * The data is deliberately messy, like real Yotpo payloads (research/yotpo.md §1.5): missing
 * fields, nulls, empty strings, numeric strings, currency strings, every timestamp flavour,
 * unparseable dates, impossible birthdays, unicode and formula-looking names, the webhook-style
 * alternative field names of MAPPING.md §2 (the names after `??`), and so on. Rare shapes are tied
 * to the index (i % k) rather than to chance, so that even a 100-customer sandbox exercises every
 * row of the mapping.
 */
import { STREAM, chance, int, mix32, pick, rngFor, type Rng } from './prng.js';

/** All generated dates are relative to this fixed instant (not the wall clock), so data is reproducible. */
export const SANDBOX_NOW_MS = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;

/** The credentials the sandbox accepts. Distinctive strings, so a leak check can grep for them. */
export const SANDBOX_CREDENTIALS = {
  loyaltyApiKey: 'sbx-loyalty-key-3f9c1e7a52d8',
  loyaltyGuid: 'sbx-guid-6b2d-41e0-9a7c',
  appKey: 'SbxAppKey7Q2w',
  apiSecret: 'sbx-reviews-secret-8e4a0c19bd',
  /** Mixed case on purpose: the client must send it lower-cased (`sandboxbrand`). */
  insiderPartner: 'SandboxBrand',
  insiderApiKey: 'sbx-insider-token-c71f2a9e40',
} as const;

// ---------------------------------------------------------------------------------------------
// small helpers

const ABSENT = Symbol('absent');
type Maybe<T> = T | null | '' | typeof ABSENT;
type Obj = Record<string, unknown>;

function put(o: Obj, key: string, v: unknown): void {
  if (v !== ABSENT) o[key] = v;
}

/** Sometimes null, sometimes absent, sometimes an empty string. */
function messy<T>(r: Rng, v: T, pNull = 0.04, pAbsent = 0.04, pEmpty = 0): Maybe<T> {
  const u = r();
  if (u < pNull) return null;
  if (u < pNull + pAbsent) return ABSENT;
  if (u < pNull + pAbsent + pEmpty) return '';
  return v;
}

/** A number, sometimes as a numeric string ("120"), very rarely as garbage. */
function numish(r: Rng, n: number): number | string {
  const u = r();
  if (u < 0.12) return String(n);
  if (u < 0.125) return 'n/a';
  return n;
}

/** A boolean, sometimes as the string "true"/"false". */
function boolish(r: Rng, pTrue: number): boolean | string {
  const b = r() < pTrue;
  return r() < 0.08 ? String(b) : b;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/**
 * Fast UTC formatting (Date#toISOString is the hot spot when generating a million customers):
 * `YYYY-MM-DDTHH:MM:SS`, from Howard Hinnant's days-to-civil algorithm. Years 0..9999.
 */
function utcParts(ms: number): string {
  const days = Math.floor(ms / DAY);
  const t = ms - days * DAY;
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  const sec = Math.floor(t / 1000);
  return `${y}-${pad(m)}-${pad(d)}T${pad(Math.floor(sec / 3600))}:${pad(Math.floor(sec / 60) % 60)}:${pad(sec % 60)}`;
}

/** `2024-04-25T13:05:00Z` */
function isoSeconds(ms: number): string {
  return `${utcParts(ms)}Z`;
}

/** `2024-04-25T13:05:00.123Z`, like Date#toISOString */
function isoMillis(ms: number): string {
  const f = ms - Math.floor(ms / 1000) * 1000;
  return `${utcParts(ms)}.${pad(f, 3)}Z`;
}

const UNPARSEABLE_DATES = ['not a date', '2024-13-45', '31/12/2024', '0000-00-00', 'yesterday'] as const;
const OFFSETS_MIN = [120, -300, 330, 60, -480, 0, 545] as const;

type DateStyle = 'z' | 'ms' | 'offset' | 'naive' | 'date' | 'bad';

function dateStyle(r: Rng, preferDate = false): DateStyle {
  const u = r() * 100;
  if (preferDate) return u < 70 ? 'date' : u < 85 ? 'z' : u < 99 ? 'naive' : 'bad';
  if (u < 52) return 'z';
  if (u < 67) return 'ms';
  if (u < 79) return 'offset';
  if (u < 89) return 'naive';
  if (u < 98.5) return 'date';
  return 'bad';
}

/**
 * One instant written in one of the shapes real payloads mix: `2024-04-25T13:05:00Z`,
 * `2024-04-25T13:05:00.123Z`, `2024-04-25T15:05:00+02:00`, `2024-04-25T13:05:00` (no zone = UTC),
 * `2024-04-25`, or (rarely) something unparseable.
 */
export function formatDate(ms: number, style: DateStyle, r: Rng): string {
  switch (style) {
    case 'z':
      return isoSeconds(ms);
    case 'ms':
      return isoMillis(ms);
    case 'naive':
      return utcParts(ms);
    case 'date':
      return utcParts(ms).slice(0, 10);
    case 'bad':
      return pick(r, UNPARSEABLE_DATES);
    case 'offset': {
      const off = pick(r, OFFSETS_MIN);
      const local = utcParts(ms + off * 60_000);
      const sign = off < 0 ? '-' : '+';
      const a = Math.abs(off);
      return `${local}${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
    }
  }
}

function pastMs(r: Rng, maxDays: number): number {
  return SANDBOX_NOW_MS - Math.floor(r() * maxDays * DAY);
}
function futureMs(r: Rng, minDays: number, maxDays: number): number {
  return SANDBOX_NOW_MS + Math.floor((minDays + r() * (maxDays - minDays)) * DAY);
}
function dateish(r: Rng, ms: number, preferDate = false): string {
  return formatDate(ms, dateStyle(r, preferDate), r);
}

/**
 * Writes `value` under the REST name or the alternative (webhook) name, in a way chosen by
 * (i + ordinal) % 8, so every 8 consecutive customers show every case of `rest ?? alt`:
 * 0-3 REST name only; 4 alternative only; 5 REST null + alternative; 6 REST "" + alternative;
 * 7 both, with a different alternative value (the REST value must win).
 */
function putAlt(o: Obj, i: number, ordinal: number, rest: string, alt: string, value: unknown, altValue: unknown): void {
  if (value === ABSENT) return;
  switch ((i + ordinal) % 8) {
    case 4:
      o[alt] = value;
      break;
    case 5:
      o[rest] = null;
      o[alt] = value;
      break;
    case 6:
      o[rest] = '';
      o[alt] = value;
      break;
    case 7:
      o[rest] = value;
      o[alt] = altValue;
      break;
    default:
      o[rest] = value;
  }
}

function otherValue(v: unknown): unknown {
  if (typeof v === 'number') return v + 7;
  if (typeof v === 'boolean') return !v;
  if (v === 'true') return 'false';
  if (v === 'false') return 'true';
  if (typeof v === 'string') return /^\d+$/.test(v) ? String(Number(v) + 7) : '2019-01-01T00:00:00Z';
  return 1;
}

// ---------------------------------------------------------------------------------------------
// emails

export type CustomerEmailKind = 'plain' | 'upper' | 'spaced' | 'leading' | 'missing' | 'invalid';

/** The shape of customer i's email. Depends on i only (not on the seed). */
export function customerEmailKind(i: number): CustomerEmailKind {
  if (i % 50 === 7) return 'missing'; // 2%
  if (i % 100 === 42) return 'invalid'; // 1%
  switch (i % 10) {
    case 3:
      return 'spaced';
    case 6:
      return 'upper';
    case 9:
      return 'leading';
    default:
      return 'plain';
  }
}

/**
 * The normalised (trimmed, lower-cased) email of customer i: `customer.<i>@example.com`, or null
 * when that customer has no email or an invalid one. Distinct per customer.
 */
export function customerEmail(i: number): string | null {
  const k = customerEmailKind(i);
  return k === 'missing' || k === 'invalid' ? null : `customer.${i}@example.com`;
}

/** The email field as the API sends it (ABSENT = no key). */
function rawCustomerEmail(i: number): Maybe<string> {
  const base = `customer.${i}@example.com`;
  switch (customerEmailKind(i)) {
    case 'plain':
      return base;
    case 'upper':
      return base.toUpperCase();
    case 'spaced':
      return `  Customer.${i}@Example.COM `;
    case 'leading':
      return ` customer.${i}@example.com`;
    case 'missing': {
      const m = Math.floor(i / 50) % 3;
      return m === 0 ? ABSENT : m === 1 ? '' : null;
    }
    case 'invalid': {
      const forms = ['not-an-email', `customer.${i}@example`, `customer.${i}.example.com`, `customer ${i}@example.com`];
      return forms[Math.floor(i / 100) % forms.length] as string;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// names

const FIRST = [
  'Jane',
  'John',
  'Maria',
  'Ahmed',
  'Olivia',
  'Liam',
  'Sofia',
  'Noah',
  'Emma',
  'Lucas',
  'José',
  'Zoë',
  'François',
  'Åsa',
  'Chloé',
  'Björn',
  'Renée',
  'Đorđe',
  'İpek',
  'Łukasz',
  'María José',
  'Anaïs',
] as const;
const LAST = [
  'Doe',
  'Smith',
  'García',
  'Müller',
  'Núñez',
  'Østergaard',
  'Kowalski',
  'Dubois',
  "O'Brien",
  'van der Berg',
  'Çelik',
  'Nguyễn',
  'Ferreira',
  'Smith-Jones',
  'Łęcka',
] as const;
const CJK_FIRST = ['太郎', '花子', '娜', '伟', '지민', 'さくら'] as const;
const CJK_LAST = ['山田', '王', '李', '김', '佐藤', '陳'] as const;
const EMOJI_FIRST = ['Sam 🎉', '🌸 Hana', 'Max 🚀', 'Lea 💜', 'Tom 👨‍👩‍👧'] as const;
/** Names a spreadsheet would run as a formula; the audit CSV must neutralise them. */
const FORMULA = ['=1+2', '+15551234567', '-Smith', '@admin', '=HYPERLINK("http://evil.example","x")', "=cmd|' /C calc'!A0"] as const;

// ---------------------------------------------------------------------------------------------
// customers

const TIERS = ['Bronze', 'Silver', 'Gold', 'Platinum', 'VIP ✨'] as const;
const CREDIT = ['$0', '$12.50', '$2,620', '$1,234.56', '$5', '£7.20', '$0.00'] as const;
const CREDIT_CC = ['€10,00', '$12.50', '¥1,200', 'CA$3.00', '€1.234,56', '$0'] as const;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Loyalty customer i (0-based) as the REST API returns it (`GET /api/v2/customers/recent`).
 *
 * Notes:
 * - no `updated_at`: the real record has none (SPEC §1); `last_seen_at`, the customer's latest
 *   loyalty activity, is what `--since` and `customers/all` filter on.
 * - `referral_link` / `referral_code` are included in listings too; the single-customer lookup
 *   returns them only with `with_referral_code=true`.
 */
export function customerAt(seed: number, i: number): Record<string, unknown> {
  const r = rngFor(seed, STREAM.customer, i);
  const c: Obj = {};

  // identity -------------------------------------------------------------------------------
  put(c, 'email', rawCustomerEmail(i));

  let first: Maybe<string>;
  let last: Maybe<string>;
  if (i % 10 === 4) {
    first = pick(r, CJK_FIRST);
    last = pick(r, CJK_LAST);
  } else if (i % 10 === 8) {
    first = pick(r, EMOJI_FIRST);
    last = pick(r, LAST);
  } else {
    first = messy(r, pick(r, FIRST), 0.04, 0.03, 0.03);
    last = messy(r, pick(r, LAST), 0.05, 0.03, 0.03);
  }
  if (i % 25 === 5) first = FORMULA[Math.floor(i / 25) % FORMULA.length] as string;
  if (i % 25 === 11) last = FORMULA[(Math.floor(i / 25) + 3) % FORMULA.length] as string;
  put(c, 'first_name', first);
  put(c, 'last_name', last);
  put(c, 'phone_number', chance(r, 0.6) ? `+1555${pad(int(r, 0, 9_999_999), 7)}` : null);

  // points --------------------------------------------------------------------------------
  const earned = int(r, 0, 20_000);
  const redeemed = Math.min(earned, int(r, 0, 8_000));
  let balance = earned - redeemed;
  if (i % 40 === 17) balance = -int(r, 1, 500); // a few negative balances (refunds)
  putAlt(c, i, 0, 'points_balance', 'point_balance', messy(r, numish(r, balance), 0.02, 0.02), balance + 10);
  put(c, 'points_earned', messy(r, numish(r, earned), 0.03, 0.03));
  put(c, 'total_redemptions', messy(r, numish(r, int(r, 0, 25)), 0.04, 0.04));
  put(c, 'total_points_redeemed', messy(r, numish(r, redeemed), 0.04, 0.04));
  put(c, 'points_expire_at', messy(r, dateish(r, futureMs(r, 10, 400)), 0.25, 0.05));
  putAlt(
    c,
    i,
    1,
    'next_points_expire_on',
    'loyalty_next_points_expire_on',
    chance(r, 0.55) ? dateish(r, futureMs(r, 5, 300), true) : ABSENT,
    '2030-01-01',
  );
  putAlt(
    c,
    i,
    2,
    'next_points_expire_amount',
    'loyalty_next_points_expire_amount',
    chance(r, 0.55) ? numish(r, int(r, 10, 2_000)) : ABSENT,
    99_999,
  );
  put(c, 'days_to_point_expiration', messy(r, numish(r, int(r, 0, 365)), 0.2, 0.2));

  // spend ---------------------------------------------------------------------------------
  const purchases = int(r, 0, 60);
  const spent = purchases * int(r, 500, 25_000);
  put(c, 'total_spend_cents', messy(r, numish(r, spent), 0.03, 0.03));
  put(c, 'total_purchases', messy(r, numish(r, purchases), 0.03, 0.03));
  put(c, 'last_purchase_at', purchases > 0 ? messy(r, dateish(r, pastMs(r, 730)), 0.05, 0.02) : null);
  put(c, 'perks_redeemed', messy(r, numish(r, int(r, 0, 12)), 0.04, 0.04));
  put(c, 'credit_balance', messy(r, pick(r, CREDIT), 0.05, 0.05, 0.02));
  put(c, 'credit_balance_in_customer_currency', messy(r, pick(r, CREDIT_CC), 0.05, 0.1, 0.02));
  put(c, 'last_seen_at', messy(r, dateish(r, pastMs(r, 365)), 0.03, 0.02));
  const tpid = String(6_000_000_000 + int(r, 0, 999_999_999));
  put(c, 'third_party_id', tpid);
  put(c, 'thirty_party_id', tpid); // the legacy typo duplicate
  put(c, 'pos_account_id', chance(r, 0.1) ? `POS-${int(r, 1000, 9999)}` : null);
  put(c, 'has_store_account', boolish(r, 0.7));

  // opt-in / marketing -------------------------------------------------------------------
  const optIn = boolish(r, 0.8);
  putAlt(c, i, 3, 'opt_in', 'is_opt_in', messy(r, optIn, 0.03, 0.03), otherValue(optIn));
  putAlt(c, i, 4, 'opted_in_at', 'loyalty_opt_in_date', messy(r, dateish(r, pastMs(r, 1500)), 0.08, 0.04), '2019-06-01T00:00:00Z');
  put(c, 'accepts_marketing', messy(r, boolish(r, 0.55), 0.05, 0.25));
  put(c, 'is_affiliate', messy(r, boolish(r, 0.05), 0.05, 0.35));

  // referrals -----------------------------------------------------------------------------
  put(c, 'successful_referrals', messy(r, numish(r, int(r, 0, 9)), 0.04, 0.04));
  put(c, 'referrals_made_and_clicked', messy(r, numish(r, int(r, 0, 30)), 0.04, 0.04));
  put(c, 'is_referred_by_other_customer', messy(r, boolish(r, 0.15), 0.04, 0.04));
  const code = (mix32(seed, 0x7ef, i) >>> 0).toString(36).slice(0, 6).padEnd(6, 'x');
  const codeExpired = boolish(r, 0.1);
  const legacyCode = (withExpired: boolean): Obj => {
    const o: Obj = {
      code,
      shares: int(r, 0, 20),
      orders: int(r, 0, 5),
      amount_cents: chance(r, 0.1) ? String(int(r, 0, 50) * 100) : int(r, 0, 50) * 100,
      total_clicks: int(r, 0, 80),
      completed_referral_customers: chance(r, 0.3)
        ? [{ email: `friend.${i}@example.org`, first_name: pick(r, FIRST), last_name: pick(r, LAST), referral_points_contributed: 500 }]
        : [],
    };
    if (withExpired) o.expired = codeExpired;
    return o;
  };
  switch (i % 5) {
    case 0: // new format (Shopify merchants after Aug 2024)
      c.referral_link = { code, link: chance(r, 0.5) ? `https://rwrd.io/${code}` : `rwrd.io/${code}`, expired: codeExpired };
      // precedence cases for `referral_link.expired ?? referral_code.expired`
      if (i % 15 === 5) {
        c.referral_code = { ...legacyCode(false), expired: otherValue(codeExpired) }; // the link's value must win
      } else if (i % 15 === 10) {
        (c.referral_link as Obj).expired = null;
        c.referral_code = legacyCode(true);
      }
      break;
    case 1: // webhook-style plain URL string, with the legacy object carrying `expired`
      c.referral_link = `https://rwrd.io/${code}?c`;
      c.referral_code = legacyCode(true);
      break;
    case 2:
      c.referral_code = legacyCode(true);
      break;
    case 3:
      c.referral_code = legacyCode(false);
      break;
    default:
      break; // none
  }

  // VIP -----------------------------------------------------------------------------------
  put(c, 'vip_tier_name', messy(r, pick(r, TIERS), 0.1, 0.05, 0.03));
  put(c, 'vip_tier_entry_date', messy(r, dateish(r, pastMs(r, 700)), 0.15, 0.05));
  putAlt(c, i, 5, 'vip_tier_expiration', 'vip_tier_ends_at', messy(r, dateish(r, futureMs(r, 30, 400)), 0.1, 0.05), '2031-01-01T00:00:00Z');

  // vip_tier_actions_completed.{amount_spent_cents,purchases_made} ?? top-level
  {
    const amount = numish(r, spent);
    const made = numish(r, purchases);
    const vac: Obj = {
      points_earned: earned,
      amount_spent_cents: amount,
      amount_spent_cents_in_customer_currency: spent,
      purchases_made: made,
      referrals_completed: int(r, 0, 5),
      campaigns_completed: chance(r, 0.3) ? ['Follow on Instagram', 'Create an account'] : [],
    };
    switch ((i + 6) % 8) {
      case 4: // only the top-level names
        c.amount_spent_cents = amount;
        c.purchases_made = made;
        break;
      case 5: // nested ones null
        vac.amount_spent_cents = null;
        vac.purchases_made = null;
        c.vip_tier_actions_completed = vac;
        c.amount_spent_cents = amount;
        c.purchases_made = made;
        break;
      case 6: // nested object without those keys
        delete vac.amount_spent_cents;
        delete vac.purchases_made;
        c.vip_tier_actions_completed = vac;
        c.amount_spent_cents = amount;
        c.purchases_made = made;
        break;
      case 7: // both: the nested value must win
        c.vip_tier_actions_completed = vac;
        c.amount_spent_cents = 1;
        c.purchases_made = 1;
        break;
      default:
        c.vip_tier_actions_completed = chance(r, 0.04) ? null : vac;
    }
  }

  // vip_tier_maintenance_requirements.amount_cents_needed_in_customer_currency ?? ….amount_cents_in_customer_currency
  {
    const needed = int(r, 0, 400) * 100;
    const vmr: Obj = {
      points_needed: int(r, 0, 5_000),
      amount_cents_needed: needed,
      purchases_needed: int(r, 0, 5),
      referrals_needed: 0,
      campaigns_needed: [],
    };
    switch ((i + 7) % 8) {
      case 4:
        vmr.amount_cents_in_customer_currency = numish(r, needed);
        break;
      case 5:
        vmr.amount_cents_needed_in_customer_currency = null;
        vmr.amount_cents_in_customer_currency = needed;
        break;
      case 6:
        vmr.amount_cents_needed_in_customer_currency = '';
        vmr.amount_cents_in_customer_currency = needed;
        break;
      case 7:
        vmr.amount_cents_needed_in_customer_currency = needed;
        vmr.amount_cents_in_customer_currency = needed + 1;
        break;
      default:
        vmr.amount_cents_needed_in_customer_currency = numish(r, needed);
    }
    c.vip_tier_maintenance_requirements = chance(r, 0.05) ? {} : vmr;
    c.vip_tier_upgrade_requirements = {
      points_needed: int(r, 0, 10_000),
      amount_cents_needed: int(r, 0, 900) * 100,
      amount_cents_needed_in_customer_currency: int(r, 0, 900) * 100,
      purchases_needed: int(r, 0, 10),
      referrals_needed: int(r, 0, 3),
      campaigns_needed: [],
    };
  }

  // coupon: expires_at ?? perk.expires_at, expired ?? perk.expired
  {
    const expiresAt = dateish(r, futureMs(r, -60, 120));
    const expired = boolish(r, 0.2);
    const perk = (): Obj => ({
      id: int(r, 1, 9_999_999),
      campaign_id: int(r, 1000, 99_999),
      reward_points: int(r, 50, 1000),
      expires_at: expiresAt,
      expired,
    });
    switch (i % 8) {
      case 0:
      case 1:
        c.expires_at = expiresAt;
        c.expired = expired;
        break;
      case 4:
        c.perk = perk();
        break;
      case 5:
        c.expires_at = null;
        c.expired = null;
        c.perk = perk();
        break;
      case 6:
        c.expires_at = '';
        c.perk = perk();
        break;
      case 7:
        c.expires_at = expiresAt;
        c.expired = expired;
        c.perk = { ...perk(), expires_at: '2031-01-01T00:00:00Z', expired: otherValue(expired) };
        break;
      default:
        break; // none
    }
  }

  // birthday: birthday_year, birthday_month, birth_day ?? birthday_day ------------------------
  if (i % 60 === 23) {
    // an impossible date
    c.birthday_month = 2;
    putAlt(c, i, 9, 'birth_day', 'birthday_day', 30, 1);
    c.birthday_year = chance(r, 0.5) ? int(r, 1950, 2005) : null;
  } else if (i % 120 === 59 || i % 120 === 119) {
    // Feb 29: valid in 2000, invalid in 2001
    c.birthday_month = 2;
    putAlt(c, i, 9, 'birth_day', 'birthday_day', 29, 1);
    c.birthday_year = i % 120 === 59 ? 2000 : 2001;
  } else if (chance(r, 0.8)) {
    const month = int(r, 1, 12);
    const year = int(r, 1950, 2005);
    const day = int(r, 1, daysInMonth(year, month));
    c.birthday_month = chance(r, 0.1) ? String(month) : month;
    putAlt(c, i, 9, 'birth_day', 'birthday_day', chance(r, 0.1) ? String(day) : day, day === 1 ? 2 : 1);
    c.birthday_year = chance(r, 0.6) ? null : year; // the year is null on many
  }

  // anniversary: anniversary_year, anniversary_month, anniversary_day (~35%)
  if (i % 90 === 47) {
    c.anniversary_year = 2020;
    c.anniversary_month = 2;
    c.anniversary_day = 30;
  } else if (i % 3 === 1 || chance(r, 0.05)) {
    const year = int(r, 2015, 2025);
    const month = int(r, 1, 12);
    c.anniversary_month = month;
    c.anniversary_day = int(r, 1, daysInMonth(year, month));
    c.anniversary_year = chance(r, 0.3) ? null : chance(r, 0.1) ? String(year) : year;
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// reviews

export const REVIEW_TOPICS = ['quality', 'shipping', 'price', 'fit', 'service', 'packaging'] as const;
export const SITE_REVIEW_SKU = 'yotpo_site_reviews';
const SKUS = ['13', 'SKU-1001', 'SKU-1002', 'tee-black-m', 'mug-classic', '8841203', 'hoodie-grey-l'] as const;
const TITLES = [
  'Great product',
  'Not bad',
  'Love it!',
  'Disappointed',
  'Fast shipping',
  'Would buy again',
  'Meh',
  'Très bien',
  '最高',
  'Five stars ⭐⭐⭐⭐⭐',
] as const;
const CONTENTS = [
  'It’s really good.',
  'Arrived late but works fine.',
  'The fit is a bit small, order one size up.',
  'Quality could be better for the price.',
  'Customer service sorted out my problem in a day.',
  'Packaging was damaged, product OK.\nWould still recommend.',
  'He said "best gift ever", so, yes.',
  '=1+1 is not a formula here, just text',
  'Absolutely love it 😍',
] as const;

export interface ReviewMeta {
  id: number;
  createdMs: number;
  updatedMs: number;
  deleted: boolean;
}

/** The fields the list endpoint filters on, cheaper to compute than the whole review. */
export function reviewMeta(seed: number, j: number): ReviewMeta {
  const r = rngFor(seed, STREAM.reviewMeta, j);
  const deleted = r() < 0.05;
  const createdMs = pastMs(r, 730);
  const updatedMs = r() < 0.6 ? createdMs : Math.min(SANDBOX_NOW_MS, createdMs + Math.floor(r() * 120 * DAY));
  // unique, increasing with j, not contiguous
  const id = 460_000_000 + j * 10 + (mix32(seed, 0x1d, j) % 10);
  return { id, createdMs, updatedMs, deleted };
}

/** The first customer at or after k (wrapping) that has a valid email, or -1. */
function customerWithEmail(k: number, customers: number): number {
  for (let step = 0; step < Math.min(customers, 200); step++) {
    const idx = (k + step) % customers;
    if (customerEmail(idx) !== null) return idx;
  }
  return -1;
}

/**
 * Review j (0-based). About 70% are written by loyalty customers (their email with case/space
 * variations), the rest by reviewer-only emails `reviewer.<n>@reviews.example.net` (shared by a
 * few neighbouring reviews), ~2% have no email. ~25% are site reviews.
 */
export function reviewAt(seed: number, j: number, customers: number): Record<string, unknown> {
  const m = reviewMeta(seed, j);
  const r = rngFor(seed, STREAM.review, j);
  const site = r() < 0.25;
  const u = r() * 100;
  const score = u < 45 ? 5 : u < 70 ? 4 : u < 82 ? 3 : u < 90 ? 2 : 1;
  const sentiment = r() < 0.2 ? null : Math.round(Math.min(1, Math.max(0, (score - 1) / 4 + (r() - 0.5) * 0.4)) * 1e6) / 1e6;

  let email: Maybe<string>;
  const e = r();
  if (e < 0.02) {
    email = pick(r, [ABSENT, '', null] as const);
  } else {
    const k = e < 0.72 && customers > 0 ? customerWithEmail(int(r, 0, customers - 1), customers) : -1;
    const v = r();
    if (k >= 0) {
      const base = `customer.${k}@example.com`;
      email = v < 0.5 ? base : v < 0.7 ? `Customer.${k}@Example.com` : v < 0.85 ? base.toUpperCase() : `  ${base} `;
    } else {
      const n = Math.floor(j / 6);
      email = v < 0.8 ? `reviewer.${n}@reviews.example.net` : `Reviewer.${n}@Reviews.Example.NET `;
    }
  }

  const rv: Obj = {
    id: m.id,
    title: pick(r, TITLES),
    content: pick(r, CONTENTS),
    score,
    votes_up: int(r, 0, 10),
    votes_down: int(r, 0, 3),
    created_at: isoMillis(m.createdMs),
    updated_at: isoMillis(m.updatedMs),
    sentiment,
    sku: site ? SITE_REVIEW_SKU : pick(r, SKUS),
    name: `${pick(r, FIRST)} ${pick(r, LAST).charAt(0)}.`,
  };
  put(rv, 'email', email);
  rv.reviewer_type = pick(r, ['verified_buyer', 'anonymous_user', 'verified_reviewer'] as const);
  rv.deleted = m.deleted;
  rv.archived = false;
  rv.escalated = false;
  rv.is_incentivized = chance(r, 0.1);
  rv.incentive_type = null;
  rv.user_reference = null;
  const t = r();
  if (t < 0.5) {
    const n = chance(r, 0.05) ? 0 : int(r, 1, 3);
    const topics: string[] = [];
    while (topics.length < n) {
      const topic = pick(r, REVIEW_TOPICS);
      if (!topics.includes(topic)) topics.push(topic);
    }
    rv.topics = topics;
  } else if (t < 0.53) {
    rv.topics = null;
  }
  return rv;
}

// ---------------------------------------------------------------------------------------------
// anniversaries (`GET /api/v2/customer_anniversary`)

const ANNIVERSARY_STREAM = 0xa2217;

/** The three shapes the endpoint answers in, by customer: fields at the root or under one key. */
export type AnniversaryShape = 'root' | 'customer_anniversary' | 'data';

/**
 * Customer i's anniversary as the anniversary endpoint knows it, or undefined (the endpoint answers
 * 404). About two in three customers with an email have one; where the listing record carries
 * anniversary fields too, every fourth such customer has another date here (the endpoint wins).
 */
export function customerAnniversary(
  seed: number,
  i: number,
):
  | { shape: AnniversaryShape; fields: { anniversary_year: number | null; anniversary_month: number; anniversary_day: number } }
  | undefined {
  if (customerEmail(i) === null || i % 3 === 2) return undefined;
  const r = rngFor(seed, ANNIVERSARY_STREAM, i);
  const shapes: readonly AnniversaryShape[] = ['root', 'customer_anniversary', 'data'];
  const shape = shapes[Math.floor(i / 3) % shapes.length]!;
  const listed = customerAt(seed, i);
  const month = Number(listed.anniversary_month);
  const day = Number(listed.anniversary_day);
  if (Number.isInteger(month) && Number.isInteger(day) && month >= 1 && i % 4 !== 0) {
    const year = Number(listed.anniversary_year);
    return {
      shape,
      fields: { anniversary_year: Number.isInteger(year) && year > 0 ? year : null, anniversary_month: month, anniversary_day: day },
    };
  }
  const year = int(r, 2015, 2025);
  const anniversaryMonth = int(r, 1, 12);
  return {
    shape,
    fields: {
      anniversary_year: chance(r, 0.2) ? null : year,
      anniversary_month: anniversaryMonth,
      anniversary_day: int(r, 1, daysInMonth(year, anniversaryMonth)),
    },
  };
}

/**
 * `last_seen_at` as an instant (a zone-less time or a bare date is UTC), for the `customers/all`
 * filter; undefined when the value is missing or cannot be read.
 */
export function instantOf(value: unknown): number | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  let text = value;
  if (/^\d{4}-\d\d-\d\d$/.test(text)) text += 'T00:00:00Z';
  else if (/T\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(text)) text += 'Z';
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Every generated `last_seen_at` is after this (a year before SANDBOX_NOW_MS, with a day of slack). */
export const EARLIEST_LAST_SEEN_MS = SANDBOX_NOW_MS - 367 * DAY;
