/** Completion of field names in the filter box: the word at the cursor, and candidates. */

export interface Word {
  start: number;
  end: number;
  prefix: string;
}

/** The identifier (with dots) that ends at `cursor`, unless the cursor is inside a string. */
export function wordAt(text: string, cursor: number): Word | null {
  let quote = "";
  for (let i = 0; i < cursor; i++) {
    const ch = text[i];
    if (quote) {
      if (ch === "\\") i++;
      else if (ch === quote) quote = "";
    } else if (ch === '"' || ch === "'") quote = ch;
  }
  if (quote) return null;
  let start = cursor;
  while (start > 0 && /[A-Za-z0-9_.]/.test(text[start - 1])) start--;
  if (start === cursor || /[0-9]/.test(text[start])) return null;
  let end = cursor;
  while (end < text.length && /[A-Za-z0-9_.]/.test(text[end])) end++;
  return { start, end, prefix: text.slice(start, cursor) };
}

export function candidates(names: readonly string[], prefix: string, max = 12): string[] {
  const p = prefix.toLowerCase();
  const starts = names.filter((n) => n.toLowerCase().startsWith(p) && n !== prefix);
  const contains = p.length >= 2 ? names.filter((n) => !n.toLowerCase().startsWith(p) && n.toLowerCase().includes(p)) : [];
  return [...starts, ...contains].slice(0, max);
}

/** Replace the word with the chosen name; returns the new text and cursor. */
export function applyCompletion(text: string, word: Word, name: string): { text: string; cursor: number } {
  const out = text.slice(0, word.start) + name + text.slice(word.end);
  return { text: out, cursor: word.start + name.length };
}
