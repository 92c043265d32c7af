import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "./client";

// Queries more than one screen uses, under one key each.

/** useProviders: the provider instances with health, capabilities and methods. */
export function useProviders() {
  return useQuery({
    queryKey: ["providers"],
    queryFn: async () => unwrap(await api.GET("/api/v1/providers")).items ?? [],
    refetchInterval: 30_000,
  });
}
