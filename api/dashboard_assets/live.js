// The live feed, pushed: GET /activities/stream (Server-Sent Events) read with fetch, so the read
// key travels in a header as on every other call (EventSource cannot set headers). Each event's
// id is kept and sent back as Last-Event-ID when the stream reconnects, so nothing is missed
// across a reconnection (the server replays it). While the stream is down the caller polls.

import { openStream } from "./api.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One SSE block ("field: value" lines) -> {id, event, data} (data null for comments and heartbeats). */
function parseBlock(block) {
  const fields = { event: "message", data: [] };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "data") fields.data.push(value);
    else fields[name] = value;
  }
  return { id: fields.id, event: fields.event, data: fields.data.length ? JSON.parse(fields.data.join("\n")) : null };
}

/**
 * Keep a stream open: onEvent(activity) for each pushed event, onGap() when the server says events
 * were missed, onMode("stream" | "poll") whenever it connects or falls back. Returns {stop()}.
 */
export function follow(path, { onEvent, onGap, onMode }) {
  let lastId = null;
  let stopped = false;
  let controller = null;
  let failures = 0;

  async function readStream(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = parseBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (message.id) lastId = message.id;
        if (message.event === "message" && message.data) onEvent(message.data);
        else if (message.event === "gap") onGap();
      }
    }
  }

  (async () => {
    while (!stopped) {
      controller = new AbortController();
      try {
        const response = await openStream(path, {}, lastId, controller.signal);
        failures = 0;
        onMode("stream");
        await readStream(response);
      } catch {
        // refused, cut or unsupported: poll until the next attempt
      }
      if (stopped) return;
      failures += 1;
      onMode("poll");
      await sleep(Math.min(30_000, 1000 * 2 ** Math.min(failures, 5)));
    }
  })();

  return { stop() { stopped = true; controller?.abort(); } };
}
