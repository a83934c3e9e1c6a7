import type { ServerConfig } from "../config/mod.ts";
import type { Store } from "../storage/mod.ts";
import { assertEquals } from "../testing/mod.ts";
import { createLogger } from "../util/mod.ts";
import { Chores } from "./chores.ts";

Deno.test("chores: stop waits for the prune under way, so the store is not closed under it", async () => {
  const events: string[] = [];
  let finishPrune!: () => void;
  const store = {
    prune: () =>
      new Promise<Record<string, number>>((resolve) => {
        finishPrune = () => {
          events.push("pruned");
          resolve({ logs: 0 });
        };
      }),
  } as unknown as Store;
  const logged: string[] = [];
  const chores = new Chores({
    config: {
      alerting: { probe_interval: 60_000 },
      storage: { retention: 86_400_000 },
    } as Pick<ServerConfig, "alerting" | "storage">,
    store,
    logger: createLogger({ format: "json", sink: (line) => logged.push(line) }),
    sessions: () => [],
    recorder: { probed() {} },
  });
  // The prune started at once (as at start-up); start-up fails right away and stops the chores.
  const stopped = chores.stop().then(() => events.push("stopped"));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assertEquals(events, [], "stop is still waiting");
  finishPrune();
  await stopped;
  assertEquals(events, ["pruned", "stopped"]);
  assertEquals(logged, []);
});
