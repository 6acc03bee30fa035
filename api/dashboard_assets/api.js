// Talking to the StreamTrack API: JSON in, JSON out, errors as the API's own message.

export class ApiError extends Error {}

// With auth on, the read endpoints need the project's secret read key. The page asks for it
// once, keeps it in sessionStorage (this tab only, gone when it closes) and sends it as
// X-StreamTrack-Key. With auth off (streamtrack dev) nothing is ever asked.
const KEY_STORAGE = "streamtrack.readKey";
const KEY_CODES = new Set(["missing_key", "invalid_key", "wrong_key_kind"]);
let asking = null;
let declined = false;

function keyHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { "X-StreamTrack-Key": key } : {};
}

/** Ask for a read key (one dialog for all panels at once); true if one was given. */
function askForKey(message) {
  if (declined) return Promise.resolve(false);
  if (!asking) {
    asking = new Promise((resolve) => {
      const key = window.prompt(`${message}\n\nPaste a read key of your project (str_...). It is kept in this tab only.`);
      if (key && key.trim()) {
        sessionStorage.setItem(KEY_STORAGE, key.trim());
        resolve(true);
      } else {
        declined = true;
        resolve(false);
      }
    }).finally(() => setTimeout(() => { asking = null; }, 0));
  }
  return asking;
}

/** fetch with the read key; on a key refusal, ask for a key (unless another panel just got one) and retry. */
async function fetchWithKey(path, init) {
  const send = () => fetch(path, { ...init, headers: { ...init.headers, ...keyHeaders() } });
  for (let attempt = 0; ; attempt++) {
    const used = sessionStorage.getItem(KEY_STORAGE);
    const response = await send();
    if ((response.status !== 401 && response.status !== 403) || attempt >= 3) return response;
    const body = await response.clone().json().catch(() => null);
    if (!body || !KEY_CODES.has(body.code)) return response;
    if (asking) await asking;  // another panel is asking: use its answer
    const current = sessionStorage.getItem(KEY_STORAGE);
    if (current && current !== used) continue;  // a new key arrived meanwhile
    if (current === used && used) sessionStorage.removeItem(KEY_STORAGE);
    if (!(await askForKey(body.message))) return response;
  }
}

function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) query.append(key, item);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

async function parse(response, path) {
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    // Every API error has {status, code, message, field?}: show what the API said.
    const detail = body && body.message ? `${body.field ? body.field + ": " : ""}${body.message}` : response.statusText;
    throw new ApiError(`${path}: ${response.status} ${detail}`);
  }
  return body;
}

export async function getJSON(path, params) {
  let response;
  try {
    response = await fetchWithKey(url(path, params), { headers: { Accept: "application/json" } });
  } catch (error) {
    throw new ApiError(`${path}: the API does not answer (${error.message})`);
  }
  return parse(response, path);
}

export async function sendJSON(method, path, body) {
  const response = await fetchWithKey(path, {
    method,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return parse(response, path);
}

/** from/to for the last `seconds`, as ISO 8601 (what /activities and /analytics accept). */
export function timeRange(seconds) {
  const to = new Date(Math.ceil(Date.now() / 1000) * 1000 + 1000);
  const from = new Date(to.getTime() - seconds * 1000);
  return { from: from.toISOString(), to: to.toISOString() };
}

/** GET a Server-Sent Events stream with the read key (EventSource cannot send one); the caller reads the body. */
export async function openStream(path, params, lastEventId, signal) {
  const headers = { Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  const response = await fetchWithKey(url(path, params), { headers, signal, cache: "no-store" });
  if (!response.ok) await parse(response, path); // throws the API's message
  return response;
}
