// Which pushed images a node copies: `all`, `none`, or a selector of terms:
//   name=GLOB          the node's name
//   label.KEY=GLOB     one of the node's labels
//   image=GLOB         the pushed image's full name (docker.io/library/app:1)
// Terms of the same kind are alternatives; kinds must all match. `*` matches any run of characters
// (slashes included), `?` one. A push may carry its own policy, which then replaces the node's.

export interface NodeIdentity {
  name: string;
  labels: Record<string, string>;
}

type Term = { kind: 'name'; glob: RegExp } | { kind: 'label'; key: string; glob: RegExp } | { kind: 'image'; glob: RegExp };

export interface ReplicationPolicy {
  /** As written, for logs and gossip. */
  readonly text: string;
  accepts(image: string, node: NodeIdentity): boolean;
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

function parseTerm(term: string, policy: string): Term {
  const m = /^(name|image|label\.([A-Za-z0-9_.\/-]+))=(.+)$/.exec(term);
  if (!m) {
    throw new Error(`replication policy "${policy}": "${term}" is not all, none, name=GLOB, label.KEY=GLOB or image=GLOB`);
  }
  const glob = globToRegExp(m[3]);
  if (m[2] !== undefined) return { kind: 'label', key: m[2], glob };
  return { kind: m[1] as 'name' | 'image', glob };
}

/** Longest policy accepted: a push's policy is kept in a label of its image record, which containerd bounds. */
const MAX_POLICY_LENGTH = 1024;

export function parseReplicationPolicy(text: string): ReplicationPolicy {
  if (text.length > MAX_POLICY_LENGTH) throw new Error(`replication policy is longer than ${MAX_POLICY_LENGTH} characters`);
  const policy = text.trim();
  if (policy === 'all') return { text: policy, accepts: () => true };
  if (policy === 'none') return { text: policy, accepts: () => false };
  const terms = policy.split(',').map((t) => t.trim()).filter(Boolean).map((t) => parseTerm(t, text));
  if (terms.length === 0) throw new Error('replication policy is empty: use all, none or a selector');
  const matches = (term: Term, image: string, node: NodeIdentity): boolean => {
    switch (term.kind) {
      case 'name':
        return term.glob.test(node.name);
      case 'image':
        return term.glob.test(image);
      case 'label':
        return node.labels[term.key] !== undefined && term.glob.test(node.labels[term.key]);
    }
  };
  // Terms grouped by what they test (each label key on its own): every group needs one match.
  const groups = new Map<string, Term[]>();
  for (const t of terms) {
    const group = t.kind === 'label' ? `label.${t.key}` : t.kind;
    groups.set(group, [...(groups.get(group) ?? []), t]);
  }
  return {
    text: policy,
    accepts: (image, node) => [...groups.values()].every((group) => group.some((t) => matches(t, image, node))),
  };
}
