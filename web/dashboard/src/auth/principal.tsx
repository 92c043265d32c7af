import { createContext, useContext, type ReactNode } from "react";

export type Role = "viewer" | "operator" | "admin";

const rank: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

export interface Principal {
  name: string;
  role: Role;
}

/** can reports whether p's role includes need (roles are cumulative). */
export function can(p: Principal | null | undefined, need: Role): boolean {
  return !!p && rank[p.role] >= rank[need];
}

const PrincipalContext = createContext<Principal | null>(null);

export function PrincipalProvider({ value, children }: { value: Principal; children: ReactNode }) {
  return <PrincipalContext.Provider value={value}>{children}</PrincipalContext.Provider>;
}

export function usePrincipal(): Principal | null {
  return useContext(PrincipalContext);
}

/** useCan hides mutating controls from roles the API would refuse anyway. */
export function useCan(need: Role): boolean {
  return can(usePrincipal(), need);
}

export function isRole(s: unknown): s is Role {
  return s === "viewer" || s === "operator" || s === "admin";
}
