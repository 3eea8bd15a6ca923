/**
 * For adapter authors: share one confirmation round trip among many callers
 * without breaking contract promise 3 ("a confirmed hold lasts at least ttl
 * from the call").
 *
 * `coalesce(send)` returns a function. Every call joins the next request that
 * has *not been sent yet*, or schedules one for the next turn of the event
 * loop; once a request is sent, later callers wait for a new one. So every
 * caller's answer comes from a request sent after its call began, and 10,000
 * refreshes in the same tick cost one keepalive (etcd) or one renew (Consul).
 */
export function coalesce<T>(send: () => Promise<T>): () => Promise<T> {
  let next: Promise<T> | undefined;
  return () => {
    next ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      next = undefined; // sent from here on: a new caller needs a new request
      return send();
    });
    return next;
  };
}
