// The one ordered read-ahead: tasks (page requests, lookups) run several at a time and their
// results come back in task order. p-limit bounds how many run at once; the queue of results not
// yet yielded is bounded too, so an endless task source (page 1, 2, 3…) is pulled only as far as
// the consumer reads.

import pLimit from 'p-limit';

type Task<T> = () => Promise<T>;

/** Results finished ahead of the consumer wait at most this many times `inFlight`. */
const LOOKAHEAD_FACTOR = 2;

/**
 * Runs up to `inFlight` tasks at once and yields their results in task order. A rejection surfaces
 * at its task's turn. When the consumer stops (break/return) or `signal` aborts, no further task
 * is started: the source is not pulled again and queued tasks never run (an aborted signal's
 * reason is what they reject with).
 */
export async function* readAhead<T>(
  tasks: Iterable<Task<T>> | AsyncIterable<Task<T>>,
  inFlight: number,
  signal?: AbortSignal,
): AsyncGenerator<T> {
  if (!Number.isInteger(inFlight) || inFlight < 1) throw new RangeError(`inFlight must be a positive integer, got ${inFlight}`);
  const limit = pLimit(inFlight);
  const source: Iterator<Task<T>> | AsyncIterator<Task<T>> =
    Symbol.asyncIterator in tasks ? tasks[Symbol.asyncIterator]() : tasks[Symbol.iterator]();
  const results: Promise<T>[] = [];
  let pulling: Promise<IteratorResult<Task<T>>> | undefined;
  let exhausted = false;
  const start = (task: Task<T>) => {
    const result = limit(() => {
      signal?.throwIfAborted();
      return task();
    });
    result.catch(() => undefined); // observed at its turn
    results.push(result);
  };
  try {
    for (;;) {
      while (!exhausted && results.length < inFlight * LOOKAHEAD_FACTOR && !signal?.aborted) {
        pulling ??= Promise.resolve(source.next());
        // An async source that is slow to give its next task must not hold back a result that is ready.
        if (
          results.length > 0 &&
          (await Promise.race([
            pulling.then(() => false),
            results[0]!.then(
              () => true,
              () => true,
            ),
          ]))
        )
          break;
        const next = await pulling;
        pulling = undefined;
        if (next.done) exhausted = true;
        else start(next.value);
      }
      const head = results.shift();
      if (!head) {
        signal?.throwIfAborted();
        return;
      }
      yield await head;
    }
  } finally {
    limit.clearQueue();
    // Not awaited: an async source waiting on its own input would hold the consumer up.
    if (!exhausted) void Promise.resolve(source.return?.()).catch(() => undefined);
  }
}
