// The management API from the browser: the session cookie, the CSRF header on changes, errors as ApiError.

export class ApiError extends Error {
  constructor(status, message, fields) {
    super(message);
    this.status = status;
    this.fields = fields || []; // [{field, message}] for input the API refused
  }
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|; )warden_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function api(method, path, body) {
  const headers = { "X-CSRF-Token": csrfToken() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && !path.startsWith("/api/auth/")) {
    window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname)}`);
    throw new ApiError(401, "signed out");
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = data && data.error ? data.error : { message: response.statusText };
    throw new ApiError(response.status, error.message, error.fields);
  }
  return data;
}

// An error as one line for a page without per-field errors: the message, then each refused field.
export function describe(error) {
  const fields = (error.fields || []).map((f) => `${f.field}: ${f.message}`).join("; ");
  return fields ? `${error.message} (${fields})` : error.message;
}
