// A value kvmlab chooses only when it launches a VM — a free port, a fresh directory, the run's SSH
// key — shown by `kvmlab plan` as its name in angle brackets. The code that builds a command line
// takes either the value or its placeholder, so the command a plan shows is the one a launch builds.
export class Placeholder {
  constructor(readonly name: string) {}

  toString(): string {
    return `<${this.name}>`;
  }
}
