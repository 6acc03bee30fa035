// Talking to the StreamTrack API: JSON in, JSON out, errors as the API's own message.

export class ApiError extends Error {}

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
    response = await fetch(url(path, params), { headers: { Accept: "application/json" } });
  } catch (error) {
    throw new ApiError(`${path}: the API does not answer (${error.message})`);
  }
  return parse(response, path);
}

export async function sendJSON(method, path, body) {
  const response = await fetch(path, {
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
