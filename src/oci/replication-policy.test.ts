import { describe, expect, it } from 'vitest';
import { parseReplicationPolicy } from './replication-policy.js';

const web = { name: 'web-1', labels: { role: 'web', zone: 'eu' } };
const db = { name: 'db-1', labels: { role: 'db', zone: 'us' } };
const app = 'ghcr.io/acme/app:1';

describe('replication policy', () => {
  it('all and none', () => {
    expect(parseReplicationPolicy('all').accepts(app, web)).toBe(true);
    expect(parseReplicationPolicy('none').accepts(app, web)).toBe(false);
  });

  it('selects nodes by name and label, and images by name', () => {
    const p = parseReplicationPolicy('label.role=web,image=ghcr.io/acme/*');
    expect(p.accepts(app, web)).toBe(true);
    expect(p.accepts(app, db)).toBe(false);
    expect(p.accepts('docker.io/library/redis:7', web)).toBe(false);
    expect(parseReplicationPolicy('name=db-*').accepts(app, db)).toBe(true);
    expect(parseReplicationPolicy('name=db-*').accepts(app, web)).toBe(false);
  });

  it('takes terms of one kind as alternatives and different labels as all required', () => {
    expect(parseReplicationPolicy('name=web-1,name=db-1').accepts(app, db)).toBe(true);
    expect(parseReplicationPolicy('label.role=web,label.zone=us').accepts(app, web)).toBe(false);
    expect(parseReplicationPolicy('label.role=web,label.zone=eu').accepts(app, web)).toBe(true);
    expect(parseReplicationPolicy('label.tier=*').accepts(app, web)).toBe(false);
  });

  it('refuses what it cannot read, saying what it expects', () => {
    expect(() => parseReplicationPolicy('role=web')).toThrow(/name=GLOB, label.KEY=GLOB or image=GLOB/);
    expect(() => parseReplicationPolicy(' , ')).toThrow(/empty/);
    // Kept in a label of the push's image record, which containerd bounds.
    expect(() => parseReplicationPolicy(`name=${'h'.repeat(1020)}`)).toThrow(/longer than 1024/);
  });
});
