// Insider's request headers (SPEC §2, §3): the partner name is sent lower-cased, as Insider requires.

export function insiderHeaders(config: { partnerName: string; apiKey: string }): Record<string, string> {
  return {
    'x-partner-name': config.partnerName.toLowerCase(),
    'x-request-token': config.apiKey,
    'content-type': 'application/json',
    accept: 'application/json',
  };
}
