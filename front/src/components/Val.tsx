/** Kubeshark's green "+": a value that adds `field == value` to the filter. */

export function Val({ text, c, add }: { text: string; c: string | null; add: (c: string) => void }) {
  return (
    <span className="val">
      <span className="val-text">{text}</span>
      {c ? (
        <button
          type="button"
          className="add"
          tabIndex={-1}
          title={`Add to filter: ${c}`}
          aria-label={`Add to filter: ${c}`}
          data-clause={c}
          onClick={(ev) => {
            ev.stopPropagation();
            add(c);
          }}
        >
          +
        </button>
      ) : null}
    </span>
  );
}

