import createClient, { type Middleware } from "openapi-fetch";
import type { paths, components } from "./schema";
import { getToken, signOut } from "../auth/session";

export type Schemas = components["schemas"];

export const sessionExpired = "The daemon no longer accepts your token (401). Sign in again.";

/** Authorization header value for a token. */
export function bearer(token: string): string {
  return `Bearer ${token}`;
}

// authMiddleware adds the session's token unless the caller set its own
// (sign-in tries a candidate token), and ends the session when the daemon
// answers 401 to the session's own token: it was revoked or rotated.
export const authMiddleware: Middleware = {
  onRequest({ request }) {
    const token = getToken();
    if (token && !request.headers.has("Authorization")) {
      request.headers.set("Authorization", bearer(token));
    }
    return request;
  },
  onResponse({ request, response }) {
    const token = getToken();
    if (response.status === 401 && token && request.headers.get("Authorization") === bearer(token)) {
      signOut(sessionExpired);
    }
    return response;
  },
};

export function newClient(baseUrl = "", fetchImpl?: typeof fetch) {
  // globalThis.fetch is looked up per request, not captured once, so that
  // whatever replaces it later (a test's stub) is used.
  const c = createClient<paths>({ baseUrl, fetch: fetchImpl ?? ((r: Request) => globalThis.fetch(r)) });
  c.use(authMiddleware);
  return c;
}

// Absolute URLs: the daemon serves the app and the API from one origin.
export const api = newClient(globalThis.location?.origin ?? "");

/** A problem+json body as the daemon sends it (RFC 9457 with huma's errors). */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  errors?: { location?: string; message?: string; value?: unknown }[] | null;
}

/** ApiError carries the daemon's problem so screens can show its words. */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;
  constructor(status: number, problem: Problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }
}

/** unwrap turns an openapi-fetch result into its data or an ApiError. */
export function unwrap<T>(r: { data?: T; error?: unknown; response: Response }): T {
  if (r.error !== undefined || !r.response.ok) {
    throw new ApiError(r.response.status, (r.error ?? {}) as Problem);
  }
  return r.data as T;
}

/** fieldErrors maps body field names ("compression_level") to messages. */
export function fieldErrors(p: Problem): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of p.errors ?? []) {
    const field = e.location?.startsWith("body.") ? e.location.slice("body.".length) : "";
    if (field && e.message && !out[field]) out[field] = e.message;
  }
  return out;
}
