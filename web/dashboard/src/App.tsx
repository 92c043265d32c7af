import { lazy, Suspense } from "react";
import { QueryClient, QueryClientProvider, useQuery } from "@tanstack/react-query";
import { BrowserRouter, Navigate, Route, Routes } from "react-router";
import { useSession } from "./auth/useSession";
import { PrincipalProvider } from "./auth/principal";
import { fetchPrincipal } from "./auth/whoami";
import { LiveProvider } from "./api/live";
import { Shell } from "./components/Shell";
import { ErrorNote, Loading } from "./components/States";
import { SignInPage } from "./pages/SignInPage";
import OverviewPage from "./pages/OverviewPage";
import VmsPage from "./pages/VmsPage";
import ExportPage from "./pages/ExportPage";
import JobsPage from "./pages/JobsPage";
import JobDetailPage from "./pages/JobDetailPage";

// The chart screens pull in Recharts; loading them on demand keeps the
// first paint small.
const ChartsPage = lazy(() => import("./pages/ChartsPage"));
const SchedulesPage = lazy(() => import("./pages/SchedulesPage"));
const WebhooksPage = lazy(() => import("./pages/WebhooksPage"));

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A 4xx will not get better by asking again.
      retry: (count, err) => count < 2 && !(err && typeof err === "object" && "status" in err && Number(err.status) < 500),
      refetchOnWindowFocus: false,
    },
  },
});

function SignedIn({ token }: { token: string }) {
  const me = useQuery({ queryKey: ["whoami", token], queryFn: () => fetchPrincipal(token), staleTime: Infinity });
  if (me.isPending) return <Loading what="your session" />;
  if (me.isError) return <ErrorNote error={me.error} />;
  return (
    <PrincipalProvider value={me.data}>
      <LiveProvider token={token}>
      <Routes>
        <Route element={<Shell />}>
          <Route index element={<Navigate to="/overview" replace />} />
          <Route path="overview" element={<OverviewPage />} />
          <Route path="vms" element={<VmsPage />} />
          <Route path="vms/:provider" element={<VmsPage />} />
          <Route path="vms/:provider/:vm" element={<VmsPage />} />
          <Route path="export" element={<ExportPage />} />
          <Route path="jobs" element={<JobsPage />} />
          <Route path="jobs/:id" element={<JobDetailPage />} />
          <Route path="charts/*" element={<Lazy><ChartsPage /></Lazy>} />
          <Route path="schedules/*" element={<Lazy><SchedulesPage /></Lazy>} />
          <Route path="webhooks/*" element={<Lazy><WebhooksPage /></Lazy>} />
          <Route path="*" element={<NotFound />} />
        </Route>
      </Routes>
      </LiveProvider>
    </PrincipalProvider>
  );
}

function Lazy({ children }: { children: React.ReactNode }) {
  return <Suspense fallback={<Loading what="screen" />}>{children}</Suspense>;
}

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>There is no such page.</p>
    </section>
  );
}

function Root() {
  const s = useSession();
  return s.token ? <SignedIn token={s.token} /> : <SignInPage notice={s.endedBecause} />;
}

export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <Root />
      </BrowserRouter>
    </QueryClientProvider>
  );
}
