// A web page the user visits can make their browser send requests to meshd on loopback: across sites (any page
// may POST a form, or load an image from 127.0.0.1:5000), or as the page's own origin once its name resolves to
// 127.0.0.1 (DNS rebinding), which lets it read the answers. Browsers send an Origin or Sec-Fetch-Site with such
// requests, and the name in the page's address as Host; registry clients send neither (Node's fetch, meshctl's,
// sends Sec-Fetch-Mode only).
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { IncomingHttpHeaders } from 'node:http';

/** Paths a browser may open from a link on another site's page: the status page, which reads nothing until it is shown. */
const PAGES = new Set(['/ui']);

/**
 * Why a request a browser sends for another site's page is refused, token or not; undefined for any other request,
 * and for following a link to the status page (a top-level visit: the other site cannot read or frame it).
 */
export function crossSiteRefusal(method: string, url: string, headers: IncomingHttpHeaders): string | undefined {
  const visit = method === 'GET' && PAGES.has(url) && headers['sec-fetch-mode'] === 'navigate' && headers['sec-fetch-dest'] === 'document';
  if (visit) return undefined;
  const { origin, host = '' } = headers;
  const site = headers['sec-fetch-site'];
  // A browser that once answered the registry's Basic challenge sends the token with another site's requests too.
  if (site === 'cross-site' || site === 'same-site' || (origin !== undefined && originHost(origin) !== host.toLowerCase())) {
    return 'requests from the pages of other sites are refused';
  }
  return undefined;
}

/** Why a browser's request without the token is refused: to a name another site could make point here. */
export function reboundRefusal(headers: IncomingHttpHeaders): string | undefined {
  const { origin, host = '' } = headers;
  if (origin === undefined && headers['sec-fetch-site'] === undefined) return undefined;
  if (!trustedName(host)) {
    return `a browser reaches meshd at an IP address, localhost or ${hostname()} only, not at "${host}" (a site whose name is made to point here could read it)`;
  }
  return undefined;
}

function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).host.toLowerCase();
  } catch {
    return undefined; // "null": a sandboxed page or a file
  }
}

/** Names no other site can be: an address, localhost, this machine's own name. */
function trustedName(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost') || name === hostname().toLowerCase();
}
