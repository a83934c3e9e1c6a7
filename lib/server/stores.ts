/**
 * The small stores that the folders below the server ask for, kept in the
 * server's database: the server is the one room that knows both sides.
 *
 * @module
 */

import type { TokenStore } from "../auth/mod.ts";
import type { AlertStore } from "../monitor/mod.ts";
import { DatabaseUnavailableError, NotFoundError, type Store, type User } from "../storage/mod.ts";

/** The alert engine's states as rows of the `alerts` table. */
export function alertStore(store: Store): AlertStore {
  return {
    fire: async (rule, severity, message, labels, state) =>
      (await store.run((s) => s.alerts.fire(rule, severity, message, labels, state))).id,
    firing: (id, message) => store.run((s) => s.alerts.firing(id, message)),
    resolve: (id) => store.run((s) => s.alerts.resolve(id)),
    discard: (id) => store.run((s) => s.alerts.discard(id)),
  };
}

/**
 * The token service's keys, users and tokens as rows of `signing_keys`,
 * `users` and `api_keys`. The reads a login waits on run through
 * `Store.run` (failing fast during an outage, bounded by the query timeout);
 * its `DatabaseUnavailableError` is what the token service treats as "not
 * now", and what reaches the login and the admin API unchanged, as does the
 * `NotFoundError` of an unknown user.
 */
export function tokenStore(store: Store): TokenStore<User> {
  return {
    signingKeys: () => store.signingKeys.active(),
    addSigningKey: (key) => store.signingKeys.add(key.kid, key.alg, key.secret),
    retireSigningKey: (kid) => store.signingKeys.retire(kid),
    user: async (name) => {
      const user = await store.users.byName(name);
      if (!user) {
        throw new NotFoundError(`No user "${name}" (add it with: burrowd user add ${name})`);
      }
      return user;
    },
    addToken: async (token) =>
      void await store.apiKeys.add(
        token.id,
        token.userId,
        token.scopes,
        token.expiresAt,
        token.secretHash === null ? undefined : { secretHash: token.secretHash },
        token.limits,
      ),
    tokens: (ids) => store.apiKeys.withUsers(ids),
    lookup: (read) => store.run(() => read()),
    isUnavailable: (error) => error instanceof DatabaseUnavailableError,
  };
}
