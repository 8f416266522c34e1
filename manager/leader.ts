// The components that run on the leader only: orchestrators, the allocator, the scheduler, the
// dispatcher. They meet in the store (watch events in, transactions out) and never call each
// other. The manager starts them when it becomes the leader and stops them when it stops being
// the leader (or shuts down); a component must tolerate being started again later, on a store
// that moved on meanwhile (re-list, then watch).
export interface LeaderComponent {
  /** For logs. */
  readonly name: string;
  /** Begins work; returns at once (the work runs on timers and watch events). */
  start(): void;
  /** Ends work; resolves once nothing of it runs any more. */
  stop(): Promise<void>;
}
