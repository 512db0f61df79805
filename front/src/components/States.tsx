/** Empty, loading and error states that say what to do next. */

import type { ReactNode } from "react";
import { ApiError } from "../lib/api";

export function Loading({ what }: { what: string }) {
  return (
    <div className="state" data-testid="loading" role="status">
      <div className="spinner" aria-hidden="true" /> Loading {what}…
    </div>
  );
}

export function Notice({ title, children, testid }: { title: string; children?: ReactNode; testid?: string }) {
  return (
    <div className="state" data-testid={testid ?? "notice"}>
      <h2>{title}</h2>
      {children}
    </div>
  );
}

export function loginHref(): string {
  return `/saml/login?next=${encodeURIComponent(window.location.pathname + window.location.search)}`;
}

/** What an API failure means for the viewer, and what to do about it. */
export function ErrorState({ error, permission, retry }: { error: unknown; permission?: string; retry?: () => void }) {
  if (error instanceof ApiError && error.status === 401) {
    return (
      <Notice title="You are not logged in" testid="error-401">
        <p>
          Log in with your organisation's single sign-on: <a href={loginHref()}>log in</a>. In standalone
          mode (<code>kubeweir tap</code>), open the one-time login link it printed in the terminal.
        </p>
      </Notice>
    );
  }
  if (error instanceof ApiError && error.status === 403) {
    return (
      <Notice title="Not allowed" testid="error-403">
        <p>{error.message}</p>
        <p>
          {permission ? (
            <>
              This needs the <code>{permission}</code> permission.{" "}
            </>
          ) : null}
          Ask an administrator to grant you a role that includes it (roles are mapped from your
          identity provider's groups).
        </p>
      </Notice>
    );
  }
  const q = error instanceof ApiError ? error.queryError : null;
  return (
    <Notice title={q ? "The filter is not valid" : "Something went wrong"} testid="error">
      <p className="error-text">{error instanceof Error ? error.message : String(error)}</p>
      {error instanceof ApiError && error.status === 0 ? <p>Check that the hub is running and reachable.</p> : null}
      {retry ? (
        <button type="button" onClick={retry}>
          Try again
        </button>
      ) : null}
    </Notice>
  );
}
