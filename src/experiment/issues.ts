// Zod issues in words a person fixing an experiment file can act on: what was found, what is allowed.
import type { z } from 'zod';
import { closest } from '../util/did-you-mean.js';

/**
 * The message of an unknown-field issue: one line per unknown key, in the order of the issue's keys,
 * each with the closest allowed field when the key looks like a slip. One line per key so that each
 * can be reported at the key's own line (unknownFieldLines).
 */
export function unknownFieldsMessage(keys: readonly string[], allowed: readonly string[]): string {
  return keys
    .map((key) => {
      const near = closest(key, allowed);
      return `unknown field ${JSON.stringify(key)}; ${near ? `did you mean ${near}? ` : ''}allowed here: ${allowed.join(', ')}`;
    })
    .join('\n');
}

/** Each unknown key of an issue with the line of the message that is about it. */
export function unknownFieldLines(issue: z.core.$ZodIssueUnrecognizedKeys): { key: string; message: string }[] {
  const lines = issue.message.split('\n');
  return issue.keys.map((key, i) => ({ key, message: lines[i] ?? issue.message }));
}

export function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? `required field is missing (expected ${issue.expected})` : `expected ${issue.expected}, found ${kind(issue.input)}`;
    case 'invalid_value':
      return `${JSON.stringify(issue.input)} is not allowed; allowed: ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_union': {
      // Report the branch that got furthest rather than "invalid input".
      const best = issue.errors.map((branch) => branch[0]).find((b) => b && b.code !== 'invalid_type') ?? issue.errors[0]?.[0];
      const expected = issue.errors.map((branch) => branch[0]).filter((b) => b?.code === 'invalid_type').map((b) => (b as z.core.$ZodIssueInvalidType).expected);
      if (best && best.code !== 'invalid_type') return describeIssue(best);
      return `expected ${[...new Set(expected)].join(' or ')}, found ${kind(issue.input)}`;
    }
    case 'invalid_key':
      return `the key ${JSON.stringify(issue.input)} is not allowed: ${issue.issues[0] ? describeIssue(issue.issues[0]) : 'invalid key'}`;
    default:
      return issue.message;
  }
}

export function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}
