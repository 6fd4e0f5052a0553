// The one error every tracefs parser throws: what it was reading, what is wrong, and the input.

export class TraceParseError extends Error {
  constructor(what: string, problem: string, text?: string) {
    super(`cannot parse ${what}: ${problem}${text === undefined ? '' : ` (input: ${JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text)})`}`);
    this.name = 'TraceParseError';
  }
}
