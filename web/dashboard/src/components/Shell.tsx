import { NavLink, Outlet } from "react-router";
import { usePrincipal } from "../auth/principal";
import { signOut } from "../auth/session";
import { useQueryClient } from "@tanstack/react-query";

// Nav entries; dash-views' screens (charts, schedules, webhooks) are here
// too, their pages in their own files.
const nav = [
  { to: "/overview", label: "Overview" },
  { to: "/vms", label: "VMs" },
  { to: "/export", label: "Export" },
  { to: "/jobs", label: "Jobs" },
  { to: "/charts", label: "Charts" },
  { to: "/schedules", label: "Schedules" },
  { to: "/webhooks", label: "Webhooks" },
];

export function Shell() {
  const p = usePrincipal();
  const qc = useQueryClient();
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <nav className="shell-nav" aria-label="Main">
        <NavLink to="/overview" className="brand">
          HyperSDK
        </NavLink>
        <ul>
          {nav.map((n) => (
            <li key={n.to}>
              <NavLink to={n.to} className={({ isActive }) => "nav-link" + (isActive ? " active" : "")}>
                {n.label}
              </NavLink>
            </li>
          ))}
        </ul>
        <div className="shell-user">
          {p && (
            <span data-testid="principal">
              {p.name} · <strong>{p.role}</strong>
            </span>
          )}
          <button
            type="button"
            className="btn"
            onClick={() => {
              qc.clear();
              signOut();
            }}
          >
            Sign out
          </button>
        </div>
      </nav>
      <main id="main" className="shell-main" tabIndex={-1}>
        <Outlet />
      </main>
    </div>
  );
}
