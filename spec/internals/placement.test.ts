/**
 * Without a server: which actor gets a connection (source/accept/placement.ts). spec/lifecycle.test.ts and
 * spec/deferred.test.ts watch the same choices made for real connections.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { leastLoaded, sessionActor, type Placeable, type PlacementRule } from '../../source/accept/placement.js';

const actor = (id: number, requestsInFlight: number, connectionCount: number, state = 'ready'): Placeable => ({ id, state, requestsInFlight, connectionCount });
const OPEN: PlacementRule = { requestsPerActor: 10, takeDraining: false };
const ids = (chosen: Placeable | 'full' | undefined) => (chosen === undefined || chosen === 'full' ? chosen : chosen.id);

describe('least loaded', () => {
  it('takes the actor with the fewest connections plus requests in flight', () => {
    const actors = [actor(1, 2, 5), actor(2, 3, 1), actor(3, 0, 6)];
    assert.equal(ids(leastLoaded(actors, OPEN, 0)), 2);
  });
  it('weighs an idle keep-alive connection half what a busy one weighs', () => {
    // Actor 1: 4 idle connections (load 4); actor 2: 2 busy ones (load 2 + 2 = 4); actor 3: 3 busy (6).
    assert.equal(ids(leastLoaded([actor(3, 3, 3), actor(1, 0, 4), actor(2, 2, 2)], OPEN, 0)), 1, 'a tie goes to the first scanned');
  });
  it('spreads ties: the scan starts where the caller says', () => {
    const idle = [actor(1, 0, 0), actor(2, 0, 0), actor(3, 0, 0)];
    assert.deepEqual(
      [0, 1, 2, 3].map((start) => ids(leastLoaded(idle, OPEN, start))),
      [1, 2, 3, 1],
    );
  });
  it('skips actors at the cap, and gives nothing when all are', () => {
    assert.equal(ids(leastLoaded([actor(1, 10, 10), actor(2, 9, 40)], OPEN, 0)), 2);
    assert.equal(leastLoaded([actor(1, 10, 10), actor(2, 10, 11)], OPEN, 0), undefined);
    assert.equal(leastLoaded([], OPEN, 0), undefined);
  });
  it('takes only ready actors, and draining ones too while the server stops', () => {
    const actors = [actor(1, 0, 0, 'booting'), actor(2, 0, 0, 'draining'), actor(3, 5, 5), actor(4, 0, 0, 'gone')];
    assert.equal(ids(leastLoaded(actors, OPEN, 0)), 3);
    assert.equal(ids(leastLoaded(actors, { requestsPerActor: 10, takeDraining: true }, 0)), 2);
    assert.equal(leastLoaded([actor(1, 0, 0, 'booting')], { requestsPerActor: 10, takeDraining: true }, 0), undefined);
  });
});

describe('a sticky session’s actor', () => {
  const actors = [actor(1, 3, 3), actor(2, 10, 12), actor(3, 0, 0, 'draining')];
  it('is that actor while it is open and below the cap', () => assert.equal(ids(sessionActor(actors, 1, OPEN)), 1));
  it('is full when at the cap: the connection waits for it', () => assert.equal(sessionActor(actors, 2, OPEN), 'full'));
  it('is gone when it does not serve (any more), so the connection may go anywhere', () => {
    assert.equal(sessionActor(actors, 3, OPEN), undefined);
    assert.equal(sessionActor(actors, 9, OPEN), undefined);
    assert.equal(ids(sessionActor(actors, 3, { requestsPerActor: 10, takeDraining: true })), 3);
  });
});
