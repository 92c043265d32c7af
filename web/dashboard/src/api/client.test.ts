import { afterEach, describe, expect, it } from "vitest";
import { fieldErrors, newClient, sessionExpired, unwrap, ApiError } from "./client";
import { getSession, signIn, signOut } from "../auth/session";

function respond(status: number, body: unknown, seen: Request[]) {
  return (async (input: Request) => {
    seen.push(input);
    return new Response(JSON.stringify(body), { status, headers: { "Content-Type": status >= 400 ? "application/problem+json" : "application/json" } });
  }) as unknown as typeof fetch;
}

afterEach(() => signOut());

describe("API client", () => {
  it("sends the session's bearer token", async () => {
    const seen: Request[] = [];
    signIn("tok-1234567890abcdef");
    const c = newClient("http://daemon", respond(200, { items: [] }, seen));
    await c.GET("/api/v1/providers");
    expect(seen[0]!.headers.get("Authorization")).toBe("Bearer tok-1234567890abcdef");
  });

  it("signs out with a reason when the daemon answers 401 to the session's token", async () => {
    signIn("revoked-token-0000");
    const c = newClient("http://daemon", respond(401, { title: "Unauthorized", status: 401 }, []));
    const r = await c.GET("/api/v1/providers");
    expect(r.response.status).toBe(401);
    expect(getSession()).toEqual({ token: null, endedBecause: sessionExpired });
    expect(globalThis.sessionStorage.getItem("hypersdk.token")).toBeNull();
  });

  it("does not end the session on a 401 to another token (a sign-in attempt)", async () => {
    signIn("good-token-00000000");
    const c = newClient("http://daemon", respond(401, { status: 401 }, []));
    await c.GET("/api/v1/status", { headers: { Authorization: "Bearer candidate" } });
    expect(getSession().token).toBe("good-token-00000000");
  });

  it("keeps the token in sessionStorage only", () => {
    signIn("kept-for-the-tab-0000");
    expect(globalThis.sessionStorage.getItem("hypersdk.token")).toBe("kept-for-the-tab-0000");
    expect(globalThis.localStorage.length).toBe(0);
  });

  it("turns problems into ApiError with field errors by body field", async () => {
    const problem = {
      status: 422,
      title: "Unprocessable Entity",
      detail: "validation failed",
      errors: [
        { location: "body.compression_level", message: "must be between 0 and 9" },
        { location: "body", message: "snapshot export is not supported" },
        { location: "query.limit", message: "too big" },
      ],
    };
    const c = newClient("http://daemon", respond(422, problem, []));
    let err: unknown;
    try {
      unwrap(await c.POST("/api/v1/jobs", { body: { provider: "p", vm: "v" } }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(422);
    expect(fieldErrors((err as ApiError).problem)).toEqual({ compression_level: "must be between 0 and 9" });
  });
});
