/**
 * The nearest of some known words to a misspelt one, for "unknown key
 * (did you mean …?)" messages.
 *
 * @example
 * ```ts
 * import { closestWord } from "./spelling.ts";
 * console.assert(closestWord("locatoins", ["locations", "weight"]) === "locations");
 * console.assert(closestWord("colour", ["locations", "weight"]) === undefined);
 * ```
 *
 * @module
 */

/** Levenshtein distance between `a` and `b` (one row of the table kept). */
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = row[j]!;
      row[j] = next;
    }
  }
  return row[b.length]!;
}

/**
 * The word of `known` nearest to `word`, when one is at most `maxDistance`
 * edits away (default 2); `undefined` otherwise. Words much longer than
 * any known one are not compared (the answer is no, and it stays cheap).
 */
export function closestWord(
  word: string,
  known: Iterable<string>,
  maxDistance = 2,
): string | undefined {
  let best: string | undefined;
  let bestDistance = maxDistance + 1;
  for (const candidate of known) {
    if (Math.abs(candidate.length - word.length) > maxDistance) continue;
    const d = editDistance(candidate, word);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}
