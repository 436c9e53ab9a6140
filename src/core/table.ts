// The Yotpo → Insider mapping (MAPPING.md) as data. This file is the only place a field name is
// written: the transform, the audit CSV header, `yotpo-insider mapping` and the README table are
// all derived from it.

export type ValueType = 'string' | 'number' | 'boolean' | 'date' | 'string[]';

/**
 * The type chosen for a custom attribute or event parameter in Insider's panel (and reported by its
 * metadata endpoint). It cannot be changed once created, and a value of another type is dropped.
 */
export type InsiderType = 'string' | 'number' | 'boolean' | 'date' | 'array';

export const INSIDER_TYPE: Record<ValueType, InsiderType> = {
  string: 'string',
  number: 'number',
  boolean: 'boolean',
  date: 'date',
  'string[]': 'array',
};

/** Where a user attribute's value comes from. */
export type AttributeSource =
  /** The first present of these paths (`a.b` = nested key), REST name first. */
  | { kind: 'path'; paths: readonly string[] }
  /** A date assembled from year, month and day fields (each a list of alternative paths). */
  | { kind: 'dateParts'; year: readonly string[]; month: readonly string[]; day: readonly string[] }
  /** Computed by backfill from the Reviews API (MAPPING §4). */
  | { kind: 'reviews' };

export interface AttributeRow {
  /** Insider attribute name. */
  readonly name: string;
  /** Default attributes sit at the root of `attributes`, custom ones under `attributes.custom`. */
  readonly where: 'default' | 'custom';
  readonly type: ValueType;
  /** The type to create it with in Insider's panel. */
  readonly insiderType: InsiderType;
  readonly source: AttributeSource;
  /** What a reader of the mapping needs to know beyond the source path. */
  readonly note?: string;
}

const path = (...paths: string[]): AttributeSource => ({ kind: 'path', paths });
const reviews: AttributeSource = { kind: 'reviews' };

const withInsiderType = <Row extends { type: ValueType }>(row: Row): Row & { insiderType: InsiderType } => ({
  ...row,
  insiderType: INSIDER_TYPE[row.type],
});

/** MAPPING §2, in table order (which is also the audit CSV's column order). */
export const USER_ATTRIBUTES: readonly AttributeRow[] = (
  [
    { name: 'name', where: 'default', type: 'string', source: path('first_name') },
    { name: 'surname', where: 'default', type: 'string', source: path('last_name') },
    {
      name: 'birthday',
      where: 'default',
      type: 'date',
      source: { kind: 'dateParts', year: ['birthday_year'], month: ['birthday_month'], day: ['birth_day', 'birthday_day'] },
      note: 'YYYY-MM-DDT00:00:00Z; no year → omitted unless --birthday-placeholder-year',
    },
    { name: 'yotpo_points_earned', where: 'custom', type: 'number', source: path('points_earned') },
    { name: 'yotpo_point_balance', where: 'custom', type: 'number', source: path('points_balance', 'point_balance') },
    { name: 'yotpo_total_redemptions', where: 'custom', type: 'number', source: path('total_redemptions') },
    { name: 'yotpo_total_points_redeemed', where: 'custom', type: 'number', source: path('total_points_redeemed') },
    { name: 'yotpo_vip_tier_name', where: 'custom', type: 'string', source: path('vip_tier_name') },
    { name: 'yotpo_successful_referrals', where: 'custom', type: 'number', source: path('successful_referrals') },
    { name: 'yotpo_referrals_made_and_clicked', where: 'custom', type: 'number', source: path('referrals_made_and_clicked') },
    { name: 'yotpo_is_referred_by_other_customer', where: 'custom', type: 'boolean', source: path('is_referred_by_other_customer') },
    {
      name: 'yotpo_amount_spent_cents',
      where: 'custom',
      type: 'number',
      source: path('vip_tier_actions_completed.amount_spent_cents', 'amount_spent_cents'),
    },
    {
      name: 'yotpo_purchases_made',
      where: 'custom',
      type: 'number',
      source: path('vip_tier_actions_completed.purchases_made', 'purchases_made'),
    },
    { name: 'yotpo_total_spend_cents', where: 'custom', type: 'number', source: path('total_spend_cents') },
    { name: 'yotpo_total_purchases', where: 'custom', type: 'number', source: path('total_purchases') },
    { name: 'yotpo_perks_redeemed', where: 'custom', type: 'number', source: path('perks_redeemed') },
    { name: 'yotpo_last_purchase_at', where: 'custom', type: 'date', source: path('last_purchase_at') },
    { name: 'yotpo_points_expire_at', where: 'custom', type: 'date', source: path('points_expire_at') },
    { name: 'yotpo_coupon_expires_at', where: 'custom', type: 'date', source: path('expires_at', 'perk.expires_at') },
    { name: 'yotpo_coupon_expired', where: 'custom', type: 'boolean', source: path('expired', 'perk.expired') },
    { name: 'yotpo_marketing_accepted', where: 'custom', type: 'boolean', source: path('accepts_marketing') },
    { name: 'yotpo_loyalty_opt_in', where: 'custom', type: 'boolean', source: path('opt_in', 'is_opt_in') },
    { name: 'yotpo_loyalty_opt_in_date', where: 'custom', type: 'date', source: path('opted_in_at', 'loyalty_opt_in_date') },
    {
      name: 'yotpo_credit_balance',
      where: 'custom',
      type: 'string',
      source: path('credit_balance'),
      note: 'kept as the string Yotpo sends, e.g. "$12.50"',
    },
    { name: 'yotpo_is_affiliate', where: 'custom', type: 'boolean', source: path('is_affiliate') },
    { name: 'yotpo_vip_tier_ends_at', where: 'custom', type: 'date', source: path('vip_tier_expiration', 'vip_tier_ends_at') },
    {
      name: 'anniversary_date',
      where: 'custom',
      type: 'date',
      source: { kind: 'dateParts', year: ['anniversary_year'], month: ['anniversary_month'], day: ['anniversary_day'] },
      note: 'same rules as birthday',
    },
    {
      name: 'yotpo_referral_code_expired',
      where: 'custom',
      type: 'boolean',
      source: path('referral_link.expired', 'referral_code.expired'),
    },
    {
      name: 'yotpo_referral_link',
      where: 'custom',
      type: 'string',
      // `referral_link.link` misses when referral_link is a plain URL string, which the next path takes.
      source: path('referral_link.link', 'referral_link'),
      note: 'referral_link.link when referral_link is an object, else the URL string',
    },
    {
      name: 'yotpo_loyalty_next_points_expire_on',
      where: 'custom',
      type: 'date',
      source: path('next_points_expire_on', 'loyalty_next_points_expire_on'),
    },
    {
      name: 'yotpo_loyalty_next_points_expire_amount',
      where: 'custom',
      type: 'number',
      source: path('next_points_expire_amount', 'loyalty_next_points_expire_amount'),
    },
    { name: 'yotpo_days_to_point_expiration', where: 'custom', type: 'number', source: path('days_to_point_expiration') },
    {
      name: 'yotpo_credit_balance_in_customer_c',
      where: 'custom',
      type: 'string',
      source: path('credit_balance_in_customer_currency'),
    },
    {
      name: 'amount_cents_in_customer_c_to_mt_vip',
      where: 'custom',
      type: 'number',
      source: path(
        'vip_tier_maintenance_requirements.amount_cents_needed_in_customer_currency',
        'vip_tier_maintenance_requirements.amount_cents_in_customer_currency',
      ),
    },
    {
      name: 'yotpo_total_reviews',
      where: 'custom',
      type: 'number',
      source: reviews,
      note: 'count of included reviews; 0 for a loyalty customer without one',
    },
    { name: 'yotpo_avg_product_rating', where: 'custom', type: 'number', source: reviews, note: 'mean score of product reviews' },
    { name: 'yotpo_avg_site_rating', where: 'custom', type: 'number', source: reviews, note: 'mean score of site reviews' },
    {
      name: 'yotpo_total_avg_rating',
      where: 'custom',
      type: 'number',
      source: reviews,
      note: 'mean score of all included reviews (review-weighted)',
    },
    {
      name: 'yotpo_avg_sentiment_product',
      where: 'custom',
      type: 'number',
      source: reviews,
      note: 'mean sentiment of product reviews that have one',
    },
    {
      name: 'yotpo_avg_sentiment_site',
      where: 'custom',
      type: 'number',
      source: reviews,
      note: 'mean sentiment of site reviews that have one',
    },
    {
      name: 'yotpo_total_avg_sentiment',
      where: 'custom',
      type: 'number',
      source: reviews,
      note: 'mean sentiment of all included reviews that have one',
    },
    {
      name: 'yotpo_top_topics',
      where: 'custom',
      type: 'string[]',
      source: reviews,
      note: 'topics of the reviews, most frequent first, ties by name, at most 5',
    },
  ] satisfies Omit<AttributeRow, 'insiderType'>[]
).map(withInsiderType);

export interface EventParamRow {
  readonly name: string;
  readonly type: ValueType;
  /** The type to create it with in Insider's panel. */
  readonly insiderType: InsiderType;
  /** Paths from the payload's top level, first present wins. */
  readonly paths: readonly string[];
  /** In referral-share events the top-level `email` is the friend: these paths are read there instead. */
  readonly shareEventPaths?: readonly string[];
}

const param = (name: string, type: ValueType, ...paths: string[]): EventParamRow => withInsiderType({ name, type, paths });

/** MAPPING §5 event parameters, sent under `event_params.custom`, in table order. */
export const EVENT_PARAMS: readonly EventParamRow[] = [
  param('yotpo_event_reward_point', 'number', 'perk.reward_points'),
  param('yotpo_earned_coupon_expired', 'boolean', 'perk.expired'),
  param('yotpo_coupon_expires_at', 'date', 'perk.expires_at'),
  param('yotpo_event_created_at', 'date', 'perk.created_at'),
  param('yotpo_redemption_option_name', 'string', 'redemption_option.name'),
  param('yotpo_redemption_option_amount', 'number', 'redemption_option.amount'),
  param('yotpo_redemption_reward_text', 'string', 'redemption.reward_text'),
  param('yotpo_new_tier_name', 'string', 'new_tier.name'),
  param('yotpo_points_earned', 'number', 'new_tier.points_earned'),
  param('yotpo_amount_spent_cents', 'number', 'new_tier.amount_spent_cents', 'vip_stats.amountSpentCents'),
  param('yotpo_purchases_made', 'number', 'new_tier.purchases_made', 'vip_stats.purchasesMade'),
  param('yotpo_vip_stats_points_earned', 'number', 'vip_stats.pointsEarned'),
  param('yotpo_referrals_completed', 'number', 'vip_stats.referralsCompleted'),
  param('yotpo_points_to_maintain_vip', 'number', 'vip_stats_needed_maintain.points_needed'),
  param('yotpo_amount_cents_to_maintain_vip', 'number', 'vip_stats_needed_maintain.amount_cents_needed'),
  param('yotpo_purchases_to_maintain_vip', 'number', 'vip_stats_needed_maintain.purchases_needed'),
  param('yotpo_referrals_to_maintain_vip', 'number', 'vip_stats_needed_maintain.referrals_needed'),
  param('yotpo_points_to_next_vip', 'number', 'vip_stats_needed_next.points_needed'),
  param('yotpo_amount_cents_to_next_vip', 'number', 'vip_stats_needed_next.amount_cents_needed'),
  param('yotpo_purchases_to_next_vip', 'number', 'vip_stats_needed_next.purchases_needed'),
  param('yotpo_referrals_to_next_vip', 'number', 'vip_stats_needed_next.referrals_needed'),
  param('yotpo_points_needed', 'number', 'points_needed'),
  withInsiderType({
    name: 'yotpo_email_referred',
    type: 'string',
    paths: ['referred_customer.email', 'email_referred'],
    shareEventPaths: ['email'],
  }),
  param('yotpo_referral_code_amount_cents', 'number', 'customer.referral_code.amount_cents'),
  param('yotpo_referral_discount_code', 'string', 'customer.referral_discount_code', 'referral_discount_code'),
  param('yotpo_product_referral_link', 'string', 'product_referral_link'),
  param('yotpo_product_id', 'string', 'product.id'),
  param('yotpo_product_name', 'string', 'product.name'),
  param('yotpo_campaign_id', 'string', 'perk.campaign_id'),
  param('yotpo_is_completed', 'boolean', 'perk.completed'),
  param('yotpo_completed_at', 'date', 'perk.completed_at'),
  param('yotpo_history_title', 'string', 'perk.history_title'),
];

export interface EventNameRow {
  /** Yotpo's `name` label, where known. */
  readonly yotpoName?: string;
  /** Yotpo's machine `topic`s, where known; a topic identifies the event before the name does. */
  readonly topics: readonly string[];
  /** Insider event name, or null for an event that is skipped (counted, never an error). */
  readonly insiderName: string | null;
  /** Why an event is skipped; set when insiderName is null. */
  readonly skipReason?: string;
  /** Member identity: in referral-share events the top-level `email` is the friend. */
  readonly shareEvent?: boolean;
  /** Documented by Yotpo but not in the integration guide's list. */
  readonly beyondGuide?: boolean;
  /** The member's opt-in date may time the event (MAPPING §5 timestamp precedence). */
  readonly optInEvent?: boolean;
  /** Yotpo's payload for this topic carries no time at all: only an envelope's `received_at` times it (SPEC §4). */
  readonly untimed?: boolean;
}

/** MAPPING §5 event names. */
export const EVENT_NAMES: readonly EventNameRow[] = [
  { yotpoName: 'Swell Redemption Created', topics: ['swell/redemption/created'], insiderName: 'redemption_created' },
  { yotpoName: 'Loyalty Custom Reward Created', topics: [], insiderName: 'loyalty_custom_reward_created' },
  { yotpoName: 'Swell Customer Birthday', topics: ['swell/customer/birthday'], insiderName: 'customer_birthday' },
  { yotpoName: 'Swell Birthday Captured', topics: [], insiderName: 'birthday_captured' },
  { yotpoName: 'Swell Customer Anniversary', topics: ['swell/customer/anniversary'], insiderName: 'customer_anniversary' },
  { yotpoName: 'Swell Anniversary Captured', topics: [], insiderName: 'anniversary_captured' },
  { yotpoName: 'Loyalty Opt In', topics: ['loyalty/opt_in'], insiderName: 'loyalty_opt_in', optInEvent: true },
  // Not optInEvent: an opt-out timed by the member's original opt-in date would land in the past.
  { yotpoName: 'Loyalty Opt Out', topics: ['loyalty/opt_out'], insiderName: 'loyalty_opt_out' },
  { yotpoName: 'Swell Points Changed', topics: [], insiderName: 'points_changed' },
  { yotpoName: 'Swell Points Earned', topics: ['swell/points/earned'], insiderName: 'points_earned' },
  { yotpoName: 'Swell Points Reminder', topics: ['swell/points/reminder'], insiderName: 'points_reminder', untimed: true },
  {
    yotpoName: 'Swell Redemption Code Below Threshold',
    topics: ['swell/redemption_code/below_threshold'],
    insiderName: null,
    skipReason: 'merchant-only event',
  },
  { yotpoName: 'Swell Point Redemption Cancellation Request', topics: [], insiderName: 'point_redemption_cancellation_request' },
  { yotpoName: 'Swell Redemption Reminder', topics: ['swell/redemption/reminder'], insiderName: 'redemption_reminder', untimed: true },
  { yotpoName: 'Swell Tier Earned', topics: ['swell/tier/earned'], insiderName: 'tier_earned', untimed: true },
  { yotpoName: 'Swell Tier Lost', topics: ['swell/tier/lost'], insiderName: 'tier_lost', untimed: true },
  { yotpoName: 'Swell Tier Status Changed', topics: ['swell/tier/status/changed'], insiderName: 'tier_status_changed', untimed: true },
  {
    yotpoName: 'Swell Referral Completed',
    topics: ['swell/referral/completed', 'yotpo/referral/completed'],
    insiderName: 'referral_completed',
    beyondGuide: true,
  },
  {
    yotpoName: 'Swell Referral Share',
    topics: ['swell/referral/share', 'yotpo/referral/shared'],
    insiderName: 'referral_shared',
    shareEvent: true,
    untimed: true,
    beyondGuide: true,
  },
  {
    yotpoName: 'Swell Referral Share Reminder',
    topics: ['swell/referral/share/reminder'],
    insiderName: 'referral_share_reminder',
    shareEvent: true,
    untimed: true,
    beyondGuide: true,
  },
  { topics: ['loyalty/referral/product_share'], insiderName: 'product_referral_shared', shareEvent: true, beyondGuide: true },
  { topics: ['loyalty/expiration/reminder'], insiderName: 'points_expiration_reminder', beyondGuide: true },
  { topics: ['swell/account/created'], insiderName: 'account_created', beyondGuide: true },
];

/** The fields of a REST customer and of a review that the pipeline reads outside the attribute table. */
export const CUSTOMER_EMAIL_FIELD = 'email';
/** SPEC §1 `--since`: a loyalty customer's latest loyalty activity (the Loyalty API has no updated_at). */
export const CUSTOMER_LAST_SEEN_FIELD = 'last_seen_at';
export const REVIEW_EMAIL_FIELD = 'email';
/** SPEC §1 `--since`: a reviewer is sent when one of their reviews was updated since. */
export const REVIEW_UPDATED_AT_FIELD = 'updated_at';

/** MAPPING §1: the member's email in a webhook payload, first present of these paths. */
export const MEMBER_EMAIL_PATHS: readonly string[] = ['customer.email', 'referrer.email', 'from', 'email'];
/** The same in referral-share events, where the top-level `email` is the friend. */
export const SHARE_EVENT_MEMBER_EMAIL_PATHS: readonly string[] = ['customer.email', 'referrer.email', 'from'];
/** MAPPING §2: a webhook's member object, looked up before the payload's top level. */
export const MEMBER_OBJECT_PATHS: readonly string[] = ['customer', 'referrer'];

/** MAPPING §5: event timestamp precedence (the envelope's `received_at` comes last). */
export const EVENT_TIMESTAMP_PATHS: readonly string[] = ['perk.completed_at', 'perk.created_at', 'redemption.created_at'];
export const OPT_IN_TIMESTAMP_PATH = 'customer.loyalty_opt_in_date';

/** Insider's rule for event names (stricter than its published regexp, which lets `homepageView` fail). */
export const INSIDER_EVENT_NAME = /^[a-z0-9][a-z0-9._-]*$/;
/** MAPPING §1. */
export const EMAIL_PATTERN = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
/** MAPPING §4: a review of the store rather than of a product. */
export const SITE_REVIEW_SKU = 'yotpo_site_reviews';
/** MAPPING §4: at most this many topics per reviewer. */
export const TOP_TOPICS_LIMIT = 5;
