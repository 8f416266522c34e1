// The root of tswarm's error hierarchy. Each subsystem derives its own classes from these and adds
// readonly context fields (a path, a field name, a node id), so that a message can name what
// failed and a caller can branch on the class instead of parsing text.

/** Base class: `name` is the class name, `cause` is kept. */
export class TswarmError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad input from a user or a peer: a flag, a spec field, an API argument. Names the field and the rule. */
export class InvalidArgumentError extends TswarmError {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super(`${field}: ${rule}`);
  }
}

/** A file on disk is not what it must be (corrupt, truncated, wrong format). Names the path. */
export class CorruptFileError extends TswarmError {
  constructor(
    readonly path: string,
    readonly problem: string,
    readonly offset?: number,
  ) {
    super(offset === undefined ? `${path}: ${problem}` : `${path} at offset ${offset}: ${problem}`);
  }
}

/** An operation was called in a lifecycle state that does not allow it. */
export class IllegalStateError extends TswarmError {}

/** For exhaustive switches: a compile error if a case is missing, a runtime error if reached. */
export function assertNever(value: never, what = 'value'): never {
  throw new IllegalStateError(`unexpected ${what}: ${JSON.stringify(value)}`);
}
