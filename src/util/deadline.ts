// Waiting for something with a deadline, without leaving a timer behind that keeps Node alive.

/** Resolves true when `p` settles within `ms`, false when the deadline passes first. */
export function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    p.then(
      () => resolve(true),
      () => resolve(true),
    ).finally(() => clearTimeout(timer));
  });
}
