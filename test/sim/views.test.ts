// Takers whose views of the mesh differ (views.ts): planned from the order the node pushed to sent, no stripe
// loops back and nobody sends much more than one copy; planned each from its own view, they did not agree.
import { describe, expect, it } from 'vitest';
import { planViews } from './views.js';

describe('plans of takers whose views differ', () => {
  it.each([100, 1000])('%i hosts, each missing 1 % of the others: one plan from the node pushed to, no stream in a loop', (nodes) => {
    const own = planViews(nodes, 1, 'own view');
    const sent = planViews(nodes, 1, 'pushed-to');
    expect(own.inCycles).toBeGreaterThan(0);
    expect(sent.inCycles).toBe(0);
    expect(sent.pushedToStreams).toBe(sent.stripes);
    expect(sent.maxStreams).toBeLessThanOrEqual(sent.stripes + 2);
    expect(sent.overloaded).toBeLessThan(own.overloaded / 4);
  }, 30_000);
});
