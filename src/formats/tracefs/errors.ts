// The one error every tracefs parser throws: what it was reading, what is wrong, and the input.
import { KvmlabError } from '../../errors.js';

export class TraceParseError extends KvmlabError {
  constructor(what: string, problem: string, text?: string) {
    super(`cannot parse ${what}: ${problem}${text === undefined ? '' : ` (input: ${JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text)})`}`);
  }
}
