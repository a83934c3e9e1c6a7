/**
 * Where alert events go: the log always, and an Alertmanager-style webhook
 * when `server.alerting.webhook_url` is set. A new kind of notifier is one
 * function returning a {@linkcode Notifier} and one line in
 * {@linkcode notifiersFor}.
 *
 * @module
 */

import type { AlertingConfig } from "../config/mod.ts";
import type { Logger } from "../util/mod.ts";
import type { Notifier } from "./alerts.ts";

/** The notifiers `alerting` asks for, each logging to `logger`. */
export function notifiersFor(
  alerting: Pick<AlertingConfig, "webhook_url">,
  logger: Logger,
): Notifier[] {
  return [
    logNotifier(logger),
    ...(alerting.webhook_url ? [webhookNotifier(alerting.webhook_url, logger)] : []),
  ];
}

/** Logs every event (error level for critical firing alerts, warn otherwise). */
export function logNotifier(logger: Logger): Notifier {
  return {
    notify(event) {
      const fields = {
        rule: event.rule,
        severity: event.severity,
        ...event.labels,
        summary: event.summary,
      };
      if (event.status === "firing") {
        logger[event.severity === "critical" ? "error" : "warn"]("alert firing", fields);
      } else {
        logger.info("alert resolved", fields);
      }
      return Promise.resolve();
    },
  };
}

/**
 * POSTs each event to `url` in Alertmanager's webhook format
 * (`{version: "4", status, alerts: [{status, labels, annotations, startsAt, endsAt}]}`),
 * retrying failures with exponential backoff; a final failure is logged.
 */
export function webhookNotifier(
  url: string,
  logger: Logger,
  options: { attempts?: number; firstDelayMs?: number; timeoutMs?: number } = {},
): Notifier {
  const attempts = options.attempts ?? 4;
  const firstDelay = options.firstDelayMs ?? 500;
  return {
    async notify(event) {
      const body = JSON.stringify({
        version: "4",
        status: event.status,
        receiver: "burrowd",
        groupKey: `${event.rule}:${event.labels.tunnel ?? ""}`,
        commonLabels: event.labels,
        alerts: [{
          status: event.status,
          labels: event.labels,
          annotations: { summary: event.summary },
          startsAt: event.startsAt.toISOString(),
          endsAt: (event.endsAt ?? new Date(0)).toISOString(),
          fingerprint: `${event.rule}:${event.labels.tunnel ?? ""}`,
        }],
      });
      let lastError = "";
      for (let i = 0; i < attempts; i++) {
        try {
          const response = await fetch(url, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body,
            signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
          });
          await response.body?.cancel();
          if (response.ok) {
            if (i > 0) {
              logger.info("alert delivered after retries", { rule: event.rule, attempts: i + 1 });
            }
            return;
          }
          lastError = `HTTP ${response.status}`;
        } catch (error) {
          lastError = (error as Error).message;
        }
        if (i < attempts - 1) await new Promise((r) => setTimeout(r, firstDelay * 2 ** i));
      }
      logger.error("alert delivery failed", {
        rule: event.rule,
        status: event.status,
        url,
        attempts,
        error: lastError,
      });
    },
  };
}
