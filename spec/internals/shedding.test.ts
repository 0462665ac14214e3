/**
 * Without a server: the shedding slices' clock (shared/shedding.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import { SLICE_BUDGET_MS, SliceBudget } from '../../shared/shedding.js';

describe('shedding slices', () => {
  it('a slice budget is not spent when it starts, and is once SLICE_BUDGET_MS have passed', () => {
    const budget = new SliceBudget();
    assert.equal(budget.spent(), false);
    const started = performance.now();
    while (performance.now() - started < SLICE_BUDGET_MS) {
      // a refusal that takes the whole budget
    }
    assert.equal(budget.spent(), true);
  });
});
