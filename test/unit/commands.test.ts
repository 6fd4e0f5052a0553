// The command table: --help lists a deferred command from its entry without loading its file, so the
// entry must say what the file declares.
import { Command, Help } from 'commander';
import { describe, expect, it } from 'vitest';
import { commands } from '../../src/commands/index.js';

describe('the command table', () => {
  it('lists each deferred command by the term and description its file declares', async () => {
    const deferred = commands.filter((c) => typeof c !== 'function');
    expect(deferred.map((d) => d.name)).toEqual(['report', 'compare', 'bundle']);
    for (const d of deferred) {
      const program = new Command('kvmlab');
      (await d.load())(program);
      const real = program.commands.find((c) => c.name() === d.name);
      expect(real, d.name).toBeDefined();
      expect(new Help().subcommandTerm(real!), d.name).toBe(d.term);
      expect(real!.description(), d.name).toBe(d.description);
    }
  });
});
