/**
 * Keeps the tslab kernel alive when a cell sends many outputs at once (an Animator redrawing a
 * long training, a loop that prints). tslab publishes outputs with zeromq 6 (`Publisher.send`)
 * and never waits for the promise it returns. zeromq sends synchronously only 512 times in a row
 * per socket (`max_sync_operations` in its socket.cc), then delays one send to the event loop so
 * as not to starve it; any send before that delayed one has gone out throws "Socket is busy
 * writing" (EBUSY). A synchronous cell cannot yield to the event loop, so the next output of the
 * same cell, or the kernel's own "idle" status right after it, throws: an output is lost, or the
 * kernel dies ("Kernel died" on the second Run All of 4.4). Every 512th message of a session
 * starts this.
 *
 * This wraps `Publisher.prototype.send` in the kernel's own zeromq: a send that finds the socket
 * busy is queued, and the queue goes out in order as soon as the delayed send completes. Messages
 * keep their order (a queued message waits for those before it), none is dropped, and sends
 * that are not busy go out synchronously as before, so live redraws still draw live. Switch it off
 * with {@link useIopubQueue}(false). Not in d2l: it fixes tslab with zeromq 6.
 */

type Send = (this: object, message: unknown) => Promise<void>;

interface PublisherProto {
  send?: Send;
  [MARK]?: Send;
}

/** Marks our wrapper (and holds the original); `Symbol.for` so that a second copy of this module sees it. */
const MARK = Symbol.for("d2l.iopubQueue");

/** The messages waiting behind a delayed send, per socket. */
const queues = new WeakMap<object, unknown[]>();

function isBusy(error: unknown): boolean {
  return (error as { code?: string } | null)?.code === "EBUSY";
}

/** The zeromq Publisher class the running tslab kernel loaded, if any (never loads zeromq itself). */
function kernelPublisher(): PublisherProto | undefined {
  for (const [path, mod] of Object.entries(require.cache)) {
    if (/[\\/]zeromq[\\/]lib[\\/]index\.js$/.test(path)) {
      const proto = (mod?.exports as { Publisher?: { prototype?: PublisherProto } } | undefined)?.Publisher?.prototype;
      if (proto) return proto;
    }
  }
  return undefined;
}

async function drain(socket: object, queue: unknown[], send: Send, waitFor: Promise<void>): Promise<void> {
  await waitFor.catch(() => undefined);
  while (queue.length > 0) {
    try {
      const sent = send.call(socket, queue[0]);
      queue.shift();
      await sent.catch(() => undefined);
    } catch (error) {
      if (!isBusy(error)) queue.shift(); // a message zeromq refuses outright would block the queue for ever
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

/**
 * Queues the kernel's outputs instead of failing when zeromq delays a send (see the module's
 * comment); `false` puts zeromq's own send back. A no-op outside a tslab kernel.
 */
export function useIopubQueue(enabled = true): void {
  const proto = kernelPublisher();
  if (!proto) return;
  const installed = proto[MARK];
  if (!enabled) {
    if (installed) {
      delete proto.send; // zeromq deletes Publisher's own send and inherits the native one
      delete proto[MARK];
    }
    return;
  }
  if (installed) return;
  const nativeSend = (Object.getPrototypeOf(proto) as PublisherProto).send;
  if (typeof nativeSend !== "function") return;
  let last = Promise.resolve();
  const send = function (this: object, message: unknown): Promise<void> {
    const queue = queues.get(this) ?? [];
    queues.set(this, queue);
    if (queue.length === 0) {
      try {
        last = nativeSend.call(this, message);
        return last;
      } catch (error) {
        if (!isBusy(error)) throw error;
        queue.push(message);
        return drain(this, queue, nativeSend, last);
      }
    }
    queue.push(message); // behind the messages already waiting, in order
    return Promise.resolve();
  };
  // The native send is inherited read-only, so a plain assignment throws; define our own on Publisher.
  Object.defineProperty(proto, "send", { value: send, writable: true, configurable: true });
  proto[MARK] = nativeSend;
}
