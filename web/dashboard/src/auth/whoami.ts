import { api, ApiError, bearer, unwrap } from "../api/client";
import { isRole, type Principal } from "./principal";

export const badToken = "The daemon refused this token (401). Check that you pasted the whole token, and that it is configured in the daemon's api.tokens.";

/**
 * fetchPrincipal asks the daemon who token belongs to. A 401 becomes the
 * bad-token message; anything else (daemon down…) keeps its own words.
 */
export async function fetchPrincipal(token: string): Promise<Principal> {
  try {
    const me = unwrap(await api.GET("/api/v1/whoami", { headers: { Authorization: bearer(token) } }));
    // An unknown role gets the least rights; the API decides anyway.
    return { name: me.name, role: isRole(me.role) ? me.role : "viewer" };
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) throw new Error(badToken);
    throw e;
  }
}
