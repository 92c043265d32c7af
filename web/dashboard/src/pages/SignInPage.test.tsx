import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { SignInPage } from "./SignInPage";
import { getSession, signOut } from "../auth/session";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  signOut();
});

function answer(status: number, body: unknown) {
  const seen: Request[] = [];
  vi.stubGlobal("fetch", async (r: Request) => {
    seen.push(r);
    return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
  });
  return seen;
}

describe("SignInPage", () => {
  it("says clearly that a token was refused, and stays signed out", async () => {
    const seen = answer(401, { status: 401, title: "Unauthorized" });
    render(<SignInPage />);
    fireEvent.change(screen.getByLabelText("API token"), { target: { value: "  Bearer wrong-token " } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toMatch(/refused this token \(401\)/), { timeout: 20_000 });
    expect(seen[0]!.headers.get("Authorization")).toBe("Bearer wrong-token");
    expect(getSession().token).toBeNull();
    expect(screen.getByLabelText("API token").getAttribute("aria-invalid")).toBe("true");
  });

  it("asks for a token before sending anything", async () => {
    const seen = answer(200, {});
    render(<SignInPage />);
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toMatch(/Paste an API token/), { timeout: 20_000 });
    expect(seen).toHaveLength(0);
  });

  it("shows why the last session ended", () => {
    render(<SignInPage notice="The daemon no longer accepts your token (401). Sign in again." />);
    expect(screen.getByRole("status").textContent).toMatch(/no longer accepts/);
  });
});
