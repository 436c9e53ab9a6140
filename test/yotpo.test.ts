// The Yotpo side: the ordered read-ahead, the Reviews token and listing checks, the Loyalty
// listings' checks, the anniversary lookup and the doctor probes, over real HTTP against the
// sandbox (or a tiny node:http server where the sandbox cannot say what is needed).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readAhead } from '../src/io/read-ahead.js';

/** A task the test settles by hand, so that order and overlap are decided by the test, not by timing. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('readAhead', () => {
  test('yields in task order whatever order the tasks finish in', async () => {
    const gates = Array.from({ length: 6 }, () => deferred<number>());
    const tasks = gates.map((gate) => () => gate.promise);
    const results: number[] = [];
    const reading = (async () => {
      for await (const value of readAhead(tasks, 3)) results.push(value);
    })();
    for (const index of [2, 1, 0, 5, 4, 3]) {
      gates[index]!.resolve(index);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await reading;
    assert.deepEqual(results, [0, 1, 2, 3, 4, 5]);
  });

  test('never runs more than inFlight tasks at once, and does run that many', async () => {
    let running = 0;
    let most = 0;
    const tasks = Array.from({ length: 40 }, (_, index) => async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setImmediate(resolve));
      running--;
      return index;
    });
    const results: number[] = [];
    for await (const value of readAhead(tasks, 4)) results.push(value);
    assert.equal(most, 4);
    assert.deepEqual(results, Array.from({ length: 40 }, (_, index) => index));
  });

  test('an endless source is pulled only a bounded way ahead; an early return starts no new task', async () => {
    let started = 0;
    function* endless() {
      for (let index = 0; ; index++) {
        yield async () => {
          started++;
          return index;
        };
      }
    }
    const results: number[] = [];
    for await (const value of readAhead(endless(), 3)) {
      results.push(value);
      if (value === 4) break;
    }
    const startedAtReturn = started;
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(results, [0, 1, 2, 3, 4]);
    assert.ok(startedAtReturn <= 5 + 2 * 3, `started ${startedAtReturn}`);
    assert.equal(started, startedAtReturn, 'nothing started after the consumer stopped');
  });

  test('a rejection surfaces at its own turn, after the results before it', async () => {
    const tasks = [0, 1, 2, 3].map((index) => async () => {
      if (index === 2) throw new Error('task 2 failed');
      return index;
    });
    const results: number[] = [];
    await assert.rejects(async () => {
      for await (const value of readAhead(tasks, 4)) results.push(value);
    }, /task 2 failed/);
    assert.deepEqual(results, [0, 1]);
  });

  test('an aborted signal starts no further task', async () => {
    const controller = new AbortController();
    let started = 0;
    const tasks = Array.from({ length: 20 }, (_, index) => async () => {
      started++;
      if (index === 1) controller.abort();
      return index;
    });
    const results: number[] = [];
    await assert.rejects(async () => {
      for await (const value of readAhead(tasks, 1, controller.signal)) results.push(value);
    }, { name: 'AbortError' });
    assert.equal(started, 2);
    assert.deepEqual(results, [0, 1]);
  });

  test('an async source that is slow to give its next task does not hold back a ready result', async () => {
    const more = deferred<void>();
    async function* source() {
      yield async () => 'first';
      await more.promise;
      yield async () => 'second';
    }
    const iterator = readAhead(source(), 2);
    assert.deepEqual(await iterator.next(), { value: 'first', done: false });
    more.resolve();
    assert.deepEqual(await iterator.next(), { value: 'second', done: false });
    assert.equal((await iterator.next()).done, true);
  });
});
