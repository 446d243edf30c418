// The token page of authsvc: a thin client of the admin API (/admin/v1/).
//
// Rules this file keeps:
// - every string that comes from the server or the operator is put in the page with
//   textContent or a form control's value, never as markup;
// - the admin token lives in this tab's sessionStorage and the Authorization header only:
//   never in the URL, a cookie or localStorage;
// - no inline script or style: the Content-Security-Policy forbids both;
// - the forms offer only what the signed-in token can hand on (the server's delegation
//   bounds); the server stays the authority, the page only narrows the choices.

import { clearUsage, renderUsage, usageQuery } from "./usage.js";

const STORAGE_KEY = "authsvc.adminToken";
const API = "/admin/v1";
const UNIT_SECONDS = { m: 60, h: 3600, d: 86400 };
const UNIT_WORDS = { m: ["minute", "minutes"], h: ["hour", "hours"], d: ["day", "days"] };
const STATUSES = new Set(["active", "expired", "blocked"]);
const DEFAULT_EXPIRY_SECONDS = 30 * 86400;
const FILTER_DELAY_MS = 250;
// Tokens whose effective expiry is this close are marked, and listed by "Expiring within
// 7 days" (the list's expires_within filter, so the mark and the filter agree).
const EXPIRING_WITHIN = "7d";
const EXPIRING_WITHIN_MS = 7 * 86400e3;
// The longest grace a reset may keep the old secret for (the API refuses more).
const MAX_GRACE_SECONDS = 7 * 86400;
// A grace as the API reads it: a whole number without leading zeros (or a zero, meaning
// no grace) and one unit, m, h or d.
const GRACE_SHAPE = /^(0|[1-9][0-9]{0,11})([mhd])$/;
// The list's "Show" choices: the query parameters each one adds.
const SHOW_FILTERS = {
  active: { status: "active" },
  expired: { status: "expired" },
  expiring: { expires_within: EXPIRING_WITHIN },
};
const CHECK_LABELS = {
  token: "Token",
  request: "Request",
  tokens_enabled: "Tokens enabled",
  expiry: "Expiry",
  ip_filter: "IP filter",
  permission: "Permission",
  rate_limit: "Rate limit",
};
// A rate limit as the API writes it (600/m): a whole number, "/", and s, m or h.
const RATE_SHAPE = /^([1-9][0-9]{0,11})\/([smh])$/;
const RATE_SECONDS = { s: 1, m: 60, h: 3600 };
const MANAGE = "ManageOrganizationTokens";
const VIEW = "ViewOrganizationTokens";

const DATE_FORMAT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "always" });

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  self: null, // the signed-in token's own object (GET /self)
  policy: null,
  permissions: [],
  ipFilters: [],
  list: { name: "", show: "", sort: "name", order: "asc", limit: 20, offset: 0, total: 0 },
  listSeq: 0,
  details: null,
  explainSeq: 0, // answers of "Test access" for an earlier request or token are dropped
  usageSeq: 0, // likewise for the usage chart of a token no longer shown
};

// ---------------------------------------------------------------------------------------
// The admin API

class ApiFailure extends Error {
  // field: the request body key (or query parameter) the server says is at fault, or null
  // when the error is about the whole request.
  constructor(status, code, message, field = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${state.token}` };
  const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(API + path, init);
  } catch {
    throw new ApiFailure(0, "network_error", "The server could not be reached.");
  }
  if (response.status === 204) {
    return null;
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && typeof data === "object" && data.error ? data.error : {};
    throw new ApiFailure(
      response.status,
      typeof error.code === "string" ? error.code : `http_${response.status}`,
      typeof error.message === "string" ? error.message : `The server answered ${response.status}.`,
      typeof error.field === "string" ? error.field : null,
    );
  }
  return data;
}

/** A sentence an operator can act on, for failures that are not about one field. */
function describeFailure(failure) {
  if (!(failure instanceof ApiFailure)) {
    return `Something went wrong in the page: ${failure}`;
  }
  switch (failure.status) {
    case 0:
      return "The server could not be reached. Check that authsvc is running, then try again.";
    case 401:
      return `This admin token was refused (401): ${failure.message}`;
    case 403:
      return `Not allowed (403): ${failure.message}`;
    case 503:
      return "The token store is unavailable (503): nothing can be read or changed right now. "
        + "Try again in a moment.";
    default:
      return `${failure.message} (${failure.status})`;
  }
}

// ---------------------------------------------------------------------------------------
// Small helpers

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function showMessage(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

function setFieldError(errorNode, controls, message) {
  showMessage(errorNode, message);
  for (const control of controls) {
    if (message) {
      control.setAttribute("aria-invalid", "true");
    } else {
      control.removeAttribute("aria-invalid");
    }
  }
}

function plural(count, unit) {
  const [one, many] = UNIT_WORDS[unit];
  return `${count} ${count === 1 ? one : many}`;
}

/** "90d" for 7776000 seconds, in the largest unit that divides it. */
function durationText(seconds) {
  for (const unit of ["d", "h", "m"]) {
    if (seconds % UNIT_SECONDS[unit] === 0) {
      return plural(seconds / UNIT_SECONDS[unit], unit);
    }
  }
  return `${seconds} seconds`;
}

function formatDate(ms) {
  return DATE_FORMAT.format(new Date(ms));
}

/** "in 29 days", "3 hours ago": whole units, rounded towards zero (never overstated). */
function relativeTime(ms) {
  const diff = ms - Date.now();
  const abs = Math.abs(diff);
  const sizes = [
    ["year", 365 * 86400e3, 730 * 86400e3],
    ["day", 86400e3, 2 * 86400e3],
    ["hour", 3600e3, 2 * 3600e3],
    ["minute", 60e3, 60e3],
  ];
  for (const [unit, size, from] of sizes) {
    if (abs >= from) {
      return RELATIVE.format(Math.sign(diff) * Math.floor(abs / size), unit);
    }
  }
  return diff > 0 ? "in less than a minute" : "less than a minute ago";
}

function timeElement(ms, text) {
  const node = element("time", "", text);
  node.dateTime = new Date(ms).toISOString();
  node.title = formatDate(ms);
  return node;
}

function closeDialog(dialog) {
  if (dialog.open) {
    dialog.close();
  }
}

// ---------------------------------------------------------------------------------------
// Signing in and out

async function loadConfiguration() {
  const [policy, permissions, ipFilters, self] = await Promise.all([
    api("GET", "/policy"),
    api("GET", "/permissions"),
    api("GET", "/ip-filters"),
    api("GET", "/self"),
  ]);
  state.policy = policy;
  state.permissions = permissions;
  state.ipFilters = ipFilters;
  state.self = self;
  renderPolicySummary();
  $("add-token").hidden = !canWrite();
}

async function signIn(token) {
  const field = $("admin-token");
  const error = $("admin-token-error");
  state.token = token;
  try {
    await loadConfiguration();
  } catch (failure) {
    state.token = null;
    sessionStorage.removeItem(STORAGE_KEY);
    setFieldError(error, [field], describeFailure(failure));
    field.focus();
    return;
  }
  sessionStorage.setItem(STORAGE_KEY, token);
  field.value = "";
  setFieldError(error, [field], "");
  $("sign-in").hidden = true;
  $("tokens").hidden = false;
  $("sign-out").hidden = false;
  await loadTokens();
}

function signOut(reason) {
  for (const dialog of document.querySelectorAll("dialog")) {
    closeDialog(dialog);
  }
  sessionStorage.removeItem(STORAGE_KEY);
  state.token = null;
  state.self = null;
  state.policy = null;
  state.details = null;
  $("token-rows").replaceChildren();
  $("tokens").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  showMessage($("banner"), "");
  $("notice").textContent = reason ? "" : "Signed out.";
  const field = $("admin-token");
  setFieldError($("admin-token-error"), [field], reason || "");
  field.focus();
}

/** Failures outside a dialog: a refused token signs out, anything else is a banner. */
function reportFailure(failure) {
  if (failure instanceof ApiFailure && failure.status === 401) {
    signOut(`${describeFailure(failure)} Sign in again.`);
    return;
  }
  showMessage($("banner"), describeFailure(failure));
}

// ---------------------------------------------------------------------------------------
// What the signed-in token can hand on (the server's delegation bounds, mirrored)

function canWrite() {
  return state.self.permissions.includes(MANAGE);
}

/** The permissions it holds, ManageOrganizationTokens including View. */
function grantable() {
  const held = new Set(state.self.permissions);
  if (held.has(MANAGE)) {
    held.add(VIEW);
  }
  return held;
}

/** Its own expiry (ms), or null; the policy's maximum lifetime bounds every token alike
 * and is not part of this bound. */
function ownExpiry() {
  return state.self.expires_at ? Date.parse(state.self.expires_at) : null;
}

/** The IP filter every token it hands out gets: its own, unless the policy enforces one. */
function inheritedFilter() {
  return state.policy.enforce_ip_filter ? null : state.self.ip_filter;
}

/** The permissions of `token` it does not hold (then it cannot change the token). */
function notGrantable(token) {
  const held = grantable();
  return token.permissions.filter((name) => !held.has(name));
}

/** Why it cannot reset the secret of `token` (as if creating it: permissions, expiry,
 * filter), or null when it can. */
function beyondReach(token) {
  const missing = notGrantable(token);
  if (missing.length > 0) {
    return `this token holds ${missing.join(", ")}, which yours does not`;
  }
  const own = ownExpiry();
  if (own !== null && (!token.expires_at || Date.parse(token.expires_at) > own)) {
    return "this token would outlive yours";
  }
  const inherited = inheritedFilter();
  if (inherited && token.ip_filter !== inherited) {
    return `this token is not limited to your token's IP filter “${inherited}”`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// The token list

function renderPolicySummary() {
  const policy = state.policy;
  const parts = [];
  parts.push(policy.max_lifetime
    ? `expiry required, at most ${policy.max_lifetime} (${durationText(policy.max_lifetime_seconds)})`
    : "expiry optional");
  parts.push(policy.enforce_ip_filter
    ? `IP filter “${policy.enforce_ip_filter}” enforced on every token`
    : "IP filter chosen per token");
  parts.push(policy.allow_permission_updates
    ? "permissions can be changed after creation"
    : "permissions cannot be changed after creation");
  parts.push(policy.max_rate_limit
    ? `rate limit required, at most ${policy.max_rate_limit}`
    : "rate limit optional");
  $("policy-summary").textContent = `Security policy: ${parts.join(" · ")}.`;
}

async function loadTokens() {
  const list = state.list;
  const query = new URLSearchParams({
    sort: list.sort, order: list.order, limit: String(list.limit), offset: String(list.offset),
  });
  if (list.name) {
    query.set("name", list.name);
  }
  for (const [key, value] of Object.entries(SHOW_FILTERS[list.show] || {})) {
    query.set(key, value);
  }
  const seq = ++state.listSeq;
  let page;
  try {
    page = await api("GET", `/tokens?${query}`);
  } catch (failure) {
    if (seq === state.listSeq) {
      // Show nothing rather than a list that may no longer be true.
      $("token-rows").replaceChildren();
      $("table-wrap").hidden = true;
      showMessage($("empty"), "");
      $("page-info").textContent = "";
      reportFailure(failure);
    }
    return;
  }
  if (seq !== state.listSeq || state.token === null) {
    return; // a newer request (or a sign-out) overtook this one
  }
  if (page.tokens.length === 0 && page.total > 0 && list.offset > 0) {
    // The last page emptied (a delete, or a narrower filter): show the one before.
    list.offset = Math.max(0, Math.floor((page.total - 1) / list.limit) * list.limit);
    await loadTokens();
    return;
  }
  showMessage($("banner"), "");
  list.total = page.total;
  renderTokens(page.tokens);
}

/** When the token stops being accepted, as the server computed it (its one expiry rule),
 * and whether that is the policy's maximum lifetime rather than the token's own expiry. */
function effectiveExpiry(token) {
  const at = token.effective_expires_at ? Date.parse(token.effective_expires_at) : null;
  const own = token.expires_at ? Date.parse(token.expires_at) : null;
  return { at, byPolicy: at !== null && at !== own };
}

/** Whether `token` still works but stops within 7 days: judged as the list's
 * expires_within filter judges it (active now, effective expiry after now and at most
 * 7 days away). */
function expiresSoon(token) {
  const { at } = effectiveExpiry(token);
  const left = at === null ? null : at - Date.now();
  return token.status === "active" && left !== null && left > 0 && left <= EXPIRING_WITHIN_MS;
}

/** The mark of a token that expires soon: words, not a colour alone. */
function expiringMark() {
  return element("span", "flag expiring", "Expires within 7 days");
}

/** When the previous secret of a rotation with a grace stops (ms), or null. */
function previousSecretEnd(token) {
  return token.previous_secret_expires_at ? Date.parse(token.previous_secret_expires_at) : null;
}

function expiryCell(token) {
  const cell = element("td");
  const { at, byPolicy } = effectiveExpiry(token);
  if (at === null) {
    cell.append(element("span", "muted", "Never"));
    return cell;
  }
  cell.append(timeElement(at, formatDate(at)), element("span", "sub", timeLeft(at)));
  if (byPolicy) {
    cell.append(element("span", "sub", "policy maximum lifetime"));
  }
  if (expiresSoon(token)) {
    cell.append(expiringMark());
  }
  return cell;
}

/** "in 3 days" while it lasts, "expired 2 hours ago" after. */
function timeLeft(at) {
  return at > Date.now() ? relativeTime(at) : `expired ${relativeTime(at)}`;
}

function ipFilterText(token) {
  const enforced = state.policy && state.policy.enforce_ip_filter;
  if (enforced) {
    return { name: enforced, note: "enforced by policy" };
  }
  return { name: token.ip_filter, note: "" };
}

function statusBadge(status) {
  const known = STATUSES.has(status) ? status : "unknown";
  return element("span", `badge status-${known}`, String(status));
}

function permissionChips(names) {
  const catalog = new Set(state.permissions.map((p) => p.name));
  const wrap = element("span", "chips");
  for (const name of names) {
    const chip = element("span", catalog.has(name) ? "chip" : "chip chip-missing", name);
    if (!catalog.has(name)) {
      chip.title = "No longer in the permission catalog: grants nothing";
    }
    wrap.append(chip);
  }
  return wrap;
}

function renderTokens(tokens) {
  const rows = tokens.map((token) => {
    const row = element("tr");
    const nameCell = element("td", "name-cell");
    const open = element("button", "link", token.name);
    open.type = "button";
    open.dataset.tokenId = token.id;
    open.addEventListener("click", () => openDetails(token.id));
    nameCell.append(open);

    const permissionsCell = element("td");
    permissionsCell.append(permissionChips(token.permissions));

    const filterCell = element("td");
    const filter = ipFilterText(token);
    if (filter.name) {
      filterCell.append(element("span", "", filter.name));
      if (filter.note) {
        filterCell.append(element("span", "sub", filter.note));
      }
    } else {
      filterCell.append(element("span", "muted", "None"));
    }

    const statusCell = element("td");
    statusCell.append(statusBadge(token.status));
    const previous = previousSecretEnd(token);
    if (previous !== null) {
      statusCell.append(element("span", "sub", `previous secret works until ${formatDate(previous)}`));
    }
    if (token.rate_limit) {
      statusCell.append(element("span", "sub", `rate limit ${token.rate_limit}`));
    }

    const usedCell = element("td");
    if (token.last_used_at) {
      const used = Date.parse(token.last_used_at);
      usedCell.append(timeElement(used, relativeTime(used)));
      if (token.last_used_ip) {
        usedCell.append(element("span", "sub", `from ${token.last_used_ip}`));
      }
    } else {
      usedCell.append(element("span", "muted", "Never"));
    }

    const cells = [nameCell, permissionsCell, filterCell, expiryCell(token), statusCell, usedCell];
    const labels = ["Name", "Permissions", "IP filter", "Expires", "Status", "Last used"];
    cells.forEach((cell, index) => {
      cell.dataset.label = labels[index]; // shown by the phone layout's stacked cards
    });
    row.append(...cells);
    return row;
  });
  $("token-rows").replaceChildren(...rows);
  renderPager(tokens.length);
}

function renderPager(shown) {
  const list = state.list;
  const empty = $("empty");
  $("table-wrap").hidden = shown === 0;
  if (list.total === 0) {
    showMessage(empty, emptyListMessage(list));
    $("page-info").textContent = "";
  } else {
    showMessage(empty, "");
    const first = list.offset + 1;
    const last = list.offset + shown;
    $("page-info").textContent = `${first}–${last} of ${list.total} token${list.total === 1 ? "" : "s"}`;
  }
  $("prev-page").disabled = list.offset === 0;
  $("next-page").disabled = list.offset + list.limit >= list.total;
}

function emptyListMessage(list) {
  const named = list.name ? ` with “${list.name}” in its name` : "";
  switch (list.show) {
    case "expiring":
      return `No token${named} expires within the next 7 days.`;
    case "active":
    case "expired":
      return `No ${list.show} token${named}.`;
    default:
      return list.name
        ? `No token name contains “${list.name}”.`
        : "No tokens yet. Use “Add new” to create one.";
  }
}

// ---------------------------------------------------------------------------------------
// The create dialog

// The create request's body keys, each shown next to its own control.
const CREATE_BODY_KEYS = ["name", "permissions", "ip_filter", "expires_in", "rate_limit"];

/** The error text and controls of the create form's `field` (a body key), or null
 * when the form has no control for it. */
function createFieldParts(field) {
  switch (field) {
    case "name":
      return { error: $("new-name-error"), controls: [$("new-name")] };
    case "permissions":
      return {
        error: $("new-permissions-error"),
        controls: [...$("new-permissions").querySelectorAll("input")],
      };
    case "ip_filter":
      return { error: $("new-ip-filter-error"), controls: [$("new-ip-filter")] };
    case "expires_in":
      return { error: $("new-expiry-error"), controls: [$("new-expiry-amount")] };
    case "rate_limit":
      return { error: $("new-rate-limit-error"), controls: [$("new-rate-limit")] };
    default:
      return null;
  }
}

function clearCreateErrors() {
  for (const field of CREATE_BODY_KEYS) {
    const parts = createFieldParts(field);
    setFieldError(parts.error, parts.controls, "");
  }
  showMessage($("create-error"), "");
}

function permissionChoice(permission, idPrefix, index, checked, disabled) {
  const item = element("div", "check-item");
  const label = element("label", "check");
  const box = element("input");
  box.type = "checkbox";
  box.id = `${idPrefix}-${index}`;
  box.value = permission.name;
  box.checked = checked;
  box.disabled = disabled;
  const text = element("span", "check-text");
  text.append(element("span", "perm-name", permission.name));
  if (permission.description) {
    text.append(element("span", "perm-desc", permission.description));
  }
  label.append(box, text);
  item.append(label);
  if (permission.endpoints && permission.endpoints.length > 0) {
    item.append(element("span", "perm-endpoints", permission.endpoints.join(" · ")));
  }
  return item;
}

function filterRules(name) {
  const filter = state.ipFilters.find((f) => f.name === name);
  return filter ? `Rules: ${filter.rules.join(" · ")}` : "";
}

function defaultExpiry(maxSeconds) {
  const seconds = maxSeconds ? Math.min(maxSeconds, DEFAULT_EXPIRY_SECONDS) : DEFAULT_EXPIRY_SECONDS;
  for (const unit of ["d", "h", "m"]) {
    if (seconds >= UNIT_SECONDS[unit]) {
      return { amount: Math.floor(seconds / UNIT_SECONDS[unit]), unit };
    }
  }
  return { amount: 1, unit: "m" };
}

function renderCreateForm() {
  const policy = state.policy;
  $("new-name").value = "";
  const held = grantable();
  const offered = state.permissions.filter((p) => held.has(p.name));
  $("new-permissions").replaceChildren(
    ...offered.map((p, i) => permissionChoice(p, "new-perm", i, false, false)),
  );
  $("new-permissions-hint").textContent = offered.length < state.permissions.length
    ? "Only the permissions your token holds can be granted."
    : "";

  // A fixed filter: the policy's, or else the one this token passes on to its tokens.
  const fixed = policy.enforce_ip_filter || inheritedFilter();
  $("ip-filter-choice").hidden = Boolean(fixed);
  $("ip-filter-enforced").hidden = !fixed;
  const select = $("new-ip-filter");
  if (fixed) {
    $("enforced-ip-filter-label").textContent = policy.enforce_ip_filter
      ? "IP filter (enforced by the security policy)"
      : "IP filter (your token's own: tokens it creates get it)";
    $("enforced-ip-filter").value = fixed;
    $("enforced-ip-filter-rules").textContent = filterRules(fixed);
    select.replaceChildren();
  } else {
    const none = element("option", "", "None: any address");
    none.value = "";
    const options = state.ipFilters.map((f) => {
      const option = element("option", "", f.name);
      option.value = f.name;
      return option;
    });
    select.replaceChildren(none, ...options);
    select.value = "";
    $("new-ip-filter-rules").textContent = "";
  }

  const max = maxExpirySeconds();
  const initial = defaultExpiry(max);
  $("new-expiry-amount").value = String(initial.amount);
  $("new-expiry-unit").value = initial.unit;
  $("new-expiry-amount").required = expiryRequired();
  $("no-expiry-choice").hidden = expiryRequired();
  $("new-no-expiry").checked = false;
  updateExpiryHint();
  $("new-rate-limit").value = "";
  $("new-rate-limit-hint").textContent = rateLimitHint();
}

/** Requests per second of a limit as written (120/m: 2), or null when it is not one. */
function perSecond(text) {
  const match = RATE_SHAPE.exec(text || "");
  return match ? Number(match[1]) / RATE_SECONDS[match[2]] : null;
}

/** What bounds a new token's rate limit: the policy's maximum and the signed-in token's
 * own limit (the server's delegation bound). */
function rateLimitHint() {
  const parts = [];
  const max = state.policy.max_rate_limit;
  const own = state.self.rate_limit;
  if (max) {
    parts.push(`Required by the security policy: at most ${max}.`);
  }
  if (own) {
    parts.push(`Your token is limited to ${own}: a token it creates needs a limit no higher.`);
  }
  if (!max && !own) {
    parts.push("Optional: empty means no limit.");
  }
  parts.push("Requests per second (s), minute (m) or hour (h), for example 600/m.");
  return parts.join(" ");
}

/** The limit `token` is held to, as the server applies it: its own, or the policy's
 * maximum when that is lower (or the token has none). */
function rateLimitText(token) {
  const own = token.rate_limit;
  const max = state.policy.max_rate_limit;
  if (max && (!own || perSecond(max) < perSecond(own))) {
    const note = `the policy's maximum ${max} applies`;
    return own ? `${own} (${note})` : `None set (${note})`;
  }
  return own || "None";
}

/** An expiry is required by the policy's maximum lifetime or by the token's own expiry. */
function expiryRequired() {
  return Boolean(state.policy.max_lifetime_seconds) || ownExpiry() !== null;
}

/** The longest expiry on offer (seconds), or null: the policy's maximum lifetime and
 * the time the signed-in token has left, whichever is shorter. */
function maxExpirySeconds() {
  const limits = [];
  if (state.policy.max_lifetime_seconds) {
    limits.push(state.policy.max_lifetime_seconds);
  }
  const own = ownExpiry();
  if (own !== null) {
    limits.push(Math.max(60, Math.floor((own - Date.now()) / 1000)));
  }
  return limits.length > 0 ? Math.min(...limits) : null;
}

function updateExpiryHint() {
  const policy = state.policy;
  const never = !expiryRequired() && $("new-no-expiry").checked;
  $("new-expiry-amount").disabled = never;
  $("new-expiry-unit").disabled = never;
  const parts = [];
  if (policy.max_lifetime_seconds) {
    parts.push(`Required by the security policy: at most ${policy.max_lifetime} `
      + `(${durationText(policy.max_lifetime_seconds)}).`);
  } else if (ownExpiry() === null) {
    parts.push("Optional: the security policy sets no maximum lifetime.");
  }
  const own = ownExpiry();
  if (own !== null) {
    parts.push(`Your token expires on ${formatDate(own)}: the new token must expire by then.`);
  }
  const seconds = expirySeconds();
  if (never) {
    parts.push("The token will not expire.");
  } else if (seconds !== null) {
    parts.push(`It would expire on ${formatDate(Date.now() + seconds * 1000)}.`);
  }
  $("new-expiry-hint").textContent = parts.join(" ");
}

function expirySeconds() {
  const text = $("new-expiry-amount").value.trim();
  if (!/^[1-9][0-9]{0,8}$/.test(text)) {
    return null;
  }
  return Number(text) * UNIT_SECONDS[$("new-expiry-unit").value];
}

/** The request body, or null after showing what to fix next to each field. Only what the
 * operator typed is checked here (a whole number); the policy's rules are the server's,
 * and its refusals are shown by the field they name. */
function createBody() {
  const policy = state.policy;
  const errors = {};
  const name = $("new-name").value;
  if (name.trim() === "") {
    errors.name = "Enter a name for the token.";
  }
  const permissions = [...$("new-permissions").querySelectorAll("input:checked")].map((b) => b.value);
  if (permissions.length === 0) {
    errors.permissions = "Choose at least one permission.";
  }
  let expiresIn = null;
  const never = !expiryRequired() && $("new-no-expiry").checked;
  if (!never) {
    const seconds = expirySeconds();
    if (seconds === null) {
      errors.expires_in = expiryRequired()
        ? "An expiry is required: enter a whole number, 1 or more."
        : "Enter a whole number, 1 or more, or tick “Never expires”.";
    } else {
      expiresIn = `${$("new-expiry-amount").value.trim()}${$("new-expiry-unit").value}`;
    }
  }
  const fixed = policy.enforce_ip_filter || inheritedFilter();
  const ipFilter = fixed ? null : $("new-ip-filter").value || null;
  const fields = Object.keys(errors);
  for (const field of fields) {
    const parts = createFieldParts(field);
    setFieldError(parts.error, parts.controls, errors[field]);
  }
  if (fields.length > 0) {
    createFieldParts(fields[0]).controls[0]?.focus();
    return null;
  }
  // A fixed filter (enforced, or the signed-in token's own) is applied by the server.
  // The rate limit's syntax and bounds are the server's to judge (shown by the field).
  const rateLimit = $("new-rate-limit").value.trim() || null;
  return { name, permissions, expires_in: expiresIn, ip_filter: ipFilter, rate_limit: rateLimit };
}

async function openCreate() {
  try {
    await loadConfiguration();
  } catch (failure) {
    reportFailure(failure);
    return;
  }
  clearCreateErrors();
  renderCreateForm();
  $("create-dialog").showModal();
  $("new-name").focus();
}

async function submitCreate(event) {
  event.preventDefault();
  clearCreateErrors();
  const body = createBody();
  if (body === null) {
    return;
  }
  const submit = $("create-submit");
  submit.disabled = true;
  let created;
  try {
    created = await api("POST", "/tokens", body);
  } catch (failure) {
    showDialogFailure(failure, $("create-error"), (field, message) => {
      const parts = createFieldParts(field);
      if (parts === null) {
        return false;
      }
      setFieldError(parts.error, parts.controls, message);
      parts.controls[0]?.focus();
      return true;
    });
    return;
  } finally {
    submit.disabled = false;
  }
  closeDialog($("create-dialog"));
  showSecret("Token created", created.name, created.token);
  $("notice").textContent = `Created token “${created.name}”.`;
  await loadTokens();
}

/** A failure inside a dialog: by the field the server names when the dialog has it
 * (`showField` answers false when it does not), else at the top of the dialog. */
function showDialogFailure(failure, formError, showField) {
  if (failure instanceof ApiFailure && failure.status === 401) {
    signOut(`${describeFailure(failure)} Sign in again.`);
    return;
  }
  const field = failure instanceof ApiFailure ? failure.field : null;
  if (field !== null && showField(field, failure.message)) {
    return;
  }
  showMessage(formError, describeFailure(failure));
}

// ---------------------------------------------------------------------------------------
// The secret, shown once

/** Shows `secret` until OK; `note` (optional) says what else the operator should know. */
function showSecret(title, name, secret, note) {
  $("secret-title").textContent = title;
  showMessage($("secret-grace"), note);
  $("secret-name").textContent = `“${name}”`;
  $("secret-value").value = secret;
  $("copy-status").textContent = "";
  delete $("copy-secret").dataset.copied;
  $("secret-dialog").showModal();
  $("copy-secret").focus();
}

async function copySecret() {
  const input = $("secret-value");
  const button = $("copy-secret");
  let copied = false;
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(input.value);
      copied = true;
    } catch {
      copied = false;
    }
  }
  if (!copied) {
    // Plain http on a non-local address has no Clipboard API: fall back to a selection.
    input.select();
    try {
      copied = document.execCommand("copy");
    } catch {
      copied = false;
    }
  }
  button.dataset.copied = copied ? "true" : "false";
  $("copy-status").textContent = copied
    ? "Copied to the clipboard."
    : "Could not copy: select the token and copy it yourself.";
}

function forgetSecret() {
  $("secret-value").value = "";
  $("copy-status").textContent = "";
}

// ---------------------------------------------------------------------------------------
// Token details: permissions, reset secret, delete

function fact(list, term, ...values) {
  list.append(element("dt", "", term));
  const dd = element("dd");
  dd.append(...values);
  list.append(dd);
}

function renderDetails(token) {
  const policy = state.policy;
  $("details-title").textContent = token.name;
  showMessage($("details-error"), "");
  const facts = $("details-facts");
  facts.replaceChildren();
  fact(facts, "Status", statusBadge(token.status));
  fact(facts, "Id", element("code", "", token.id));
  const created = Date.parse(token.created_at);
  fact(facts, "Created", timeElement(created, `${formatDate(created)} by ${token.created_by}`));
  const { at, byPolicy } = effectiveExpiry(token);
  const limit = byPolicy ? ", the policy's maximum lifetime" : "";
  const soon = expiresSoon(token) ? [" ", expiringMark()] : [];
  fact(facts, "Expires", at === null
    ? element("span", "", "Never")
    : timeElement(at, `${formatDate(at)} (${timeLeft(at)})${limit}`), ...soon);
  const previous = previousSecretEnd(token);
  if (previous !== null) {
    fact(facts, "Previous secret", timeElement(previous, `works until ${formatDate(previous)} `
      + `(${relativeTime(previous)}), or until the new secret is first used`));
  }
  const filter = ipFilterText(token);
  fact(facts, "IP filter", element("span", "", filter.name
    ? `${filter.name}${filter.note ? ` (${filter.note})` : ""}`
    : "None: any address"));
  fact(facts, "Rate limit", element("span", "", rateLimitText(token)));
  const used = token.last_used_at ? Date.parse(token.last_used_at) : null;
  const from = token.last_used_ip ? ` from ${token.last_used_ip}` : "";
  fact(facts, "Last used", used === null
    ? element("span", "", "Never")
    : timeElement(used, `${formatDate(used)}${from}`));

  // Only a token within the signed-in token's permissions can be changed, and only to
  // permissions it holds; anything else is shown, never offered.
  const missing = notGrantable(token);
  const editable = policy.allow_permission_updates && canWrite() && missing.length === 0;
  const mine = grantable();
  const held = new Set(token.permissions);
  const catalog = state.permissions.map((p) => p.name);
  const choices = state.permissions.map((p, i) => (
    permissionChoice(p, "detail-perm", i, held.has(p.name), !editable || !mine.has(p.name))));
  token.permissions.filter((name) => !catalog.includes(name)).forEach((name, i) => {
    const gone = { name, description: "No longer in the catalog: grants nothing", endpoints: [] };
    choices.push(permissionChoice(gone, "detail-perm-gone", i, true, !editable));
  });
  $("details-permissions").replaceChildren(...choices);
  let hint = "Changes take effect at once. Only the permissions your token holds can be granted.";
  if (!policy.allow_permission_updates) {
    hint = "The security policy does not allow changing permissions after creation.";
  } else if (!canWrite()) {
    hint = "Your token may only look (it lacks ManageOrganizationTokens).";
  } else if (missing.length > 0) {
    hint = `Your token cannot change this token: it holds ${missing.join(", ")}, which yours does not.`;
  }
  $("details-permissions-hint").textContent = hint;
  $("save-permissions").hidden = !editable;
  setFieldError($("details-permissions-error"), [], "");

  const beyond = canWrite() ? beyondReach(token) : "your token may only look";
  $("reset-secret").disabled = beyond !== null;
  showMessage($("reset-secret-hint"), beyond && `Your token cannot reset this secret: ${beyond}.`);
  $("delete-token").hidden = !canWrite();
  renderRateLimitForm(token, canWrite() && missing.length === 0);
  resetExplain();
}

/** The rate limit's edit form: offered only when the signed-in token can change `token`. */
function renderRateLimitForm(token, editable) {
  $("rate-limit-form").hidden = !editable;
  $("details-rate-limit").value = token.rate_limit || "";
  $("details-rate-limit-hint").textContent = `${rateLimitHint()} Changes take effect at once.`;
  setFieldError($("details-rate-limit-error"), [$("details-rate-limit")], "");
}

async function saveRateLimit(event) {
  event.preventDefault();
  const token = state.details;
  const input = $("details-rate-limit");
  const error = $("details-rate-limit-error");
  setFieldError(error, [input], "");
  const rateLimit = input.value.trim() || null;
  let updated;
  try {
    const path = `/tokens/${encodeURIComponent(token.id)}`;
    updated = await api("PATCH", path, { rate_limit: rateLimit });
  } catch (failure) {
    showDialogFailure(failure, $("details-error"), (field, message) => {
      if (field !== "rate_limit") {
        return false;
      }
      setFieldError(error, [input], message);
      input.focus();
      return true;
    });
    return;
  }
  state.details = updated;
  renderDetails(updated);
  $("notice").textContent = updated.rate_limit
    ? `Set the rate limit of “${updated.name}” to ${updated.rate_limit}.`
    : `Removed the rate limit of “${updated.name}”.`;
  await loadTokens();
}

/** The usage chart of `token` (GET /tokens/{id}/usage), drawn once it arrives; an answer
 * for a token no longer shown is dropped. */
async function loadUsage(token) {
  const seq = ++state.usageSeq;
  const chart = $("usage-chart");
  const summary = $("usage-summary");
  clearUsage(chart, summary, "Loading the requests of the last 7 days…");
  const now = Date.now();
  let answer;
  try {
    answer = await api("GET", `/tokens/${encodeURIComponent(token.id)}/usage?${usageQuery(now)}`);
  } catch (failure) {
    if (seq !== state.usageSeq) {
      return;
    }
    if (failure instanceof ApiFailure && failure.status === 401) {
      reportFailure(failure);
      return;
    }
    clearUsage(chart, summary, `The requests could not be loaded. ${describeFailure(failure)}`);
    return;
  }
  if (seq === state.usageSeq) {
    renderUsage(chart, summary, answer.hours, now);
  }
}

async function openDetails(tokenId) {
  let token;
  try {
    [token] = await Promise.all([api("GET", `/tokens/${encodeURIComponent(tokenId)}`), loadConfiguration()]);
  } catch (failure) {
    reportFailure(failure);
    if (failure instanceof ApiFailure && failure.status === 404) {
      await loadTokens();
    }
    return;
  }
  state.details = token;
  renderDetails(token);
  $("details-dialog").showModal();
  $("details-close").focus();
  await loadUsage(token);
}

async function savePermissions(event) {
  event.preventDefault();
  const token = state.details;
  const boxes = [...$("details-permissions").querySelectorAll("input")];
  const permissions = boxes.filter((b) => b.checked).map((b) => b.value);
  const error = $("details-permissions-error");
  if (permissions.length === 0) {
    setFieldError(error, boxes, "Choose at least one permission.");
    return;
  }
  setFieldError(error, boxes, "");
  let updated;
  try {
    updated = await api("PATCH", `/tokens/${encodeURIComponent(token.id)}`, { permissions });
  } catch (failure) {
    showDialogFailure(failure, $("details-error"), (field, message) => {
      if (field !== "permissions") {
        return false;
      }
      setFieldError(error, boxes, message);
      return true;
    });
    return;
  }
  state.details = updated;
  renderDetails(updated);
  $("notice").textContent = `Saved the permissions of “${updated.name}”.`;
  await loadTokens();
}

function confirmAction(title, message, action) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-message").textContent = message;
  $("confirm-ok").textContent = action;
  return new Promise((resolve) => {
    const finish = (answer) => {
      $("confirm-ok").removeEventListener("click", onOk);
      $("confirm-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onClose);
      closeDialog(dialog);
      resolve(answer);
    };
    const onOk = () => finish(true);
    const onCancel = () => finish(false);
    const onClose = () => finish(false);
    $("confirm-ok").addEventListener("click", onOk);
    $("confirm-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    $("confirm-cancel").focus(); // the safe choice is the default one
  });
}

/** The rotate dialog's grace control in use: the duration field for "another time",
 * else the choice list. */
function graceControl() {
  return $("rotate-grace").value === "other" ? $("rotate-grace-duration") : $("rotate-grace");
}

/** The grace chosen: `{ grace, seconds }` (grace null: none), or `{ error }` to show
 * at the field. Checked as the API checks it, which stays the authority. */
function chosenGrace() {
  const choice = $("rotate-grace").value;
  const text = choice === "other" ? $("rotate-grace-duration").value.trim() : choice;
  if (text === "") {
    return choice === "other"
      ? { error: "Enter a grace period, for example 90m, 12h or 3d." }
      : { grace: null, seconds: 0 };
  }
  const match = GRACE_SHAPE.exec(text);
  if (match === null) {
    return { error: `“${text}” is not a duration: write a whole number followed by m, h or d, `
      + "for example 90m, 12h or 3d." };
  }
  const seconds = Number(match[1]) * UNIT_SECONDS[match[2]];
  if (seconds > MAX_GRACE_SECONDS) {
    return { error: `${text} is longer than the 7 days an old secret may be kept.` };
  }
  return { grace: seconds === 0 ? null : text, seconds };
}

function updateRotateMessage() {
  const token = state.details;
  $("rotate-grace-other").hidden = $("rotate-grace").value !== "other";
  const chosen = chosenGrace();
  const parts = [];
  if (chosen.error === undefined && chosen.seconds === 0) {
    parts.push("The current secret stops working at once; anything using it loses access "
      + "until it gets the new one.");
  } else {
    const how = chosen.error === undefined ? `for ${durationText(chosen.seconds)}` : "for the grace period";
    parts.push(`The current secret keeps working ${how}, or until the new secret is first `
      + "used, whichever comes first: deploy the new secret meanwhile.");
  }
  if (previousSecretEnd(token) !== null) {
    parts.push("The old secret kept by the last reset stops at once.");
  }
  parts.push("The new secret is shown once.");
  $("rotate-message").textContent = parts.join(" ");
}

function clearRotateErrors() {
  setFieldError($("rotate-grace-error"), [$("rotate-grace"), $("rotate-grace-duration")], "");
  showMessage($("rotate-error"), "");
}

function resetSecret() {
  const token = state.details;
  $("rotate-title").textContent = `Reset the secret of “${token.name}”?`;
  $("rotate-grace").value = "";
  $("rotate-grace-duration").value = "";
  clearRotateErrors();
  updateRotateMessage();
  $("rotate-dialog").showModal();
  $("rotate-cancel").focus(); // the safe choice is the default one
}

function showGraceError(message) {
  const control = graceControl();
  setFieldError($("rotate-grace-error"), [control], message);
  control.focus();
}

async function submitRotate(event) {
  event.preventDefault();
  const token = state.details;
  clearRotateErrors();
  const chosen = chosenGrace();
  if (chosen.error !== undefined) {
    showGraceError(chosen.error);
    return;
  }
  const submit = $("rotate-submit");
  submit.disabled = true;
  let rotated;
  try {
    // Without a grace no body is sent: a rotation exactly as before graces existed.
    const body = chosen.grace === null ? undefined : { grace: chosen.grace };
    rotated = await api("POST", `/tokens/${encodeURIComponent(token.id)}/rotate`, body);
  } catch (failure) {
    showDialogFailure(failure, $("rotate-error"), (field, message) => {
      if (field !== "grace") {
        return false;
      }
      showGraceError(message);
      return true;
    });
    return;
  } finally {
    submit.disabled = false;
  }
  closeDialog($("rotate-dialog"));
  state.details = rotated;
  renderDetails(rotated);
  const previous = previousSecretEnd(rotated);
  const note = previous === null ? "" : `The previous secret keeps working until `
    + `${formatDate(previous)} (${relativeTime(previous)}), or until this one is first used.`;
  showSecret("New secret", rotated.name, rotated.token, note);
  $("notice").textContent = `Reset the secret of “${rotated.name}”.`;
  await loadTokens();
}

async function deleteToken() {
  const token = state.details;
  const ok = await confirmAction(
    `Delete “${token.name}”?`,
    "The token stops working at once. This cannot be undone.",
    "Delete token",
  );
  if (!ok) {
    return;
  }
  try {
    await api("DELETE", `/tokens/${encodeURIComponent(token.id)}`);
  } catch (failure) {
    showDialogFailure(failure, $("details-error"), () => false);
    return;
  }
  state.details = null;
  closeDialog($("details-dialog"));
  $("notice").textContent = `Deleted token “${token.name}”.`;
  await loadTokens();
}

// ---------------------------------------------------------------------------------------
// Test access: what /auth would answer for this token and a request (POST /explain)

/** The error text and control of the explain form's `field` (a body key), or null. */
function explainFieldParts(field) {
  switch (field) {
    case "method":
      return { error: $("explain-method-error"), controls: [$("explain-method")] };
    case "uri":
      return { error: $("explain-uri-error"), controls: [$("explain-uri")] };
    case "ip":
      return { error: $("explain-ip-error"), controls: [$("explain-ip")] };
    default:
      return null;
  }
}

function clearExplainErrors() {
  for (const field of ["method", "uri", "ip"]) {
    const parts = explainFieldParts(field);
    setFieldError(parts.error, parts.controls, "");
  }
  showMessage($("explain-error"), "");
}

/** A fresh form for another token (or the same one changed): no result, no errors, and
 * any answer still on its way is dropped. What was typed stays, to try it again. */
function resetExplain() {
  state.explainSeq += 1;
  clearExplainErrors();
  const result = $("explain-result");
  result.replaceChildren();
  result.hidden = true;
  $("explain-submit").disabled = false;
}

function renderExplanation(answer) {
  const allowed = answer.status === 200;
  const verdict = element("p", `verdict ${allowed ? "verdict-allow" : "verdict-deny"}`);
  verdict.append(
    `${allowed ? "Allowed" : "Refused"}: `,
    element("code", "", `${answer.status} ${answer.reason}`),
  );
  const checks = element("ul", "explain-checks");
  for (const check of Array.isArray(answer.checks) ? answer.checks : []) {
    const item = element("li", check.passed ? "check-passed" : "check-failed");
    item.append(
      element("span", `flag ${check.passed ? "outcome-passed" : "outcome-failed"}`,
        check.passed ? "passed" : "failed"),
      element("span", "check-name", CHECK_LABELS[check.check] || String(check.check)),
      element("span", "check-detail", String(check.detail ?? "")),
    );
    checks.append(item);
  }
  const facts = element("dl", "facts");
  fact(facts, "Matched endpoint", answer.matched_endpoint
    ? element("code", "", String(answer.matched_endpoint))
    : element("span", "", "None: no permission of this token grants the request"));
  fact(facts, "Deciding IP rule", answer.ip_rule
    ? element("code", "", String(answer.ip_rule))
    : element("span", "", "None: no IP filter applies to this token"));
  const result = $("explain-result");
  result.replaceChildren(verdict, checks, facts);
  result.hidden = false;
}

async function submitExplain(event) {
  event.preventDefault();
  const token = state.details;
  resetExplain();
  const method = $("explain-method").value.trim();
  const uri = $("explain-uri").value.trim();
  const ip = $("explain-ip").value.trim();
  const errors = {};
  if (method === "") {
    errors.method = "Enter the request's method, for example GET.";
  }
  if (uri === "") {
    errors.uri = "Enter the request target, for example /api/v1/items?page=2.";
  }
  const fields = Object.keys(errors);
  for (const field of fields) {
    const parts = explainFieldParts(field);
    setFieldError(parts.error, parts.controls, errors[field]);
  }
  if (fields.length > 0) {
    explainFieldParts(fields[0]).controls[0].focus();
    return;
  }
  const seq = state.explainSeq;
  const submit = $("explain-submit");
  submit.disabled = true;
  let answer;
  try {
    answer = await api("POST", "/explain", { token_id: token.id, method, uri, ip: ip || null });
  } catch (failure) {
    if (seq === state.explainSeq) {
      submit.disabled = false;
      showDialogFailure(failure, $("explain-error"), (field, message) => {
        const parts = explainFieldParts(field);
        if (parts === null) {
          return false;
        }
        setFieldError(parts.error, parts.controls, message);
        parts.controls[0].focus();
        return true;
      });
    }
    return;
  }
  if (seq !== state.explainSeq) {
    return; // the details changed (another token, or this one updated) meanwhile
  }
  submit.disabled = false;
  renderExplanation(answer);
}

// ---------------------------------------------------------------------------------------
// Wiring

function wire() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const field = $("admin-token");
    const token = field.value.trim();
    if (!/^[\x21-\x7e]+$/.test(token)) {
      setFieldError($("admin-token-error"), [field], token
        ? "That is not a token: paste the whole token string, without spaces."
        : "Paste an admin token.");
      field.focus();
      return;
    }
    $("notice").textContent = "";
    signIn(token);
  });
  $("sign-out").addEventListener("click", () => signOut(""));

  let filterTimer = null;
  const applyFilter = () => {
    clearTimeout(filterTimer);
    const name = $("filter-name").value.trim().slice(0, 100);
    if (name !== state.list.name) {
      state.list.name = name;
      state.list.offset = 0;
      loadTokens();
    }
  };
  $("filter-name").addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(applyFilter, FILTER_DELAY_MS);
  });
  $("filter-name").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      applyFilter();
    }
  });
  $("sort").addEventListener("change", () => {
    const [sort, order] = $("sort").value.split(":");
    Object.assign(state.list, { sort, order, offset: 0 });
    loadTokens();
  });
  $("filter-status").addEventListener("change", () => {
    Object.assign(state.list, { show: $("filter-status").value, offset: 0 });
    loadTokens();
  });
  $("page-size").addEventListener("change", () => {
    Object.assign(state.list, { limit: Number($("page-size").value), offset: 0 });
    loadTokens();
  });
  $("prev-page").addEventListener("click", () => {
    state.list.offset = Math.max(0, state.list.offset - state.list.limit);
    loadTokens();
  });
  $("next-page").addEventListener("click", () => {
    state.list.offset += state.list.limit;
    loadTokens();
  });
  $("refresh").addEventListener("click", async () => {
    try {
      await loadConfiguration();
    } catch (failure) {
      reportFailure(failure);
      return;
    }
    await loadTokens();
  });

  $("add-token").addEventListener("click", openCreate);
  $("create-form").addEventListener("submit", submitCreate);
  $("create-cancel").addEventListener("click", () => closeDialog($("create-dialog")));
  $("new-expiry-amount").addEventListener("input", updateExpiryHint);
  $("new-expiry-unit").addEventListener("change", updateExpiryHint);
  $("new-no-expiry").addEventListener("change", updateExpiryHint);
  $("new-ip-filter").addEventListener("change", () => {
    $("new-ip-filter-rules").textContent = filterRules($("new-ip-filter").value);
  });

  $("copy-secret").addEventListener("click", copySecret);
  $("secret-ok").addEventListener("click", () => closeDialog($("secret-dialog")));
  // Escape must not throw away a secret that is never shown again: OK closes.
  $("secret-dialog").addEventListener("cancel", (event) => event.preventDefault());
  $("secret-dialog").addEventListener("close", forgetSecret);

  $("details-form").addEventListener("submit", savePermissions);
  $("rate-limit-form").addEventListener("submit", saveRateLimit);
  $("details-close").addEventListener("click", () => closeDialog($("details-dialog")));
  $("reset-secret").addEventListener("click", resetSecret);
  $("rotate-form").addEventListener("submit", submitRotate);
  $("rotate-cancel").addEventListener("click", () => closeDialog($("rotate-dialog")));
  $("rotate-grace").addEventListener("change", () => {
    clearRotateErrors();
    updateRotateMessage();
  });
  $("rotate-grace-duration").addEventListener("input", updateRotateMessage);
  $("explain-form").addEventListener("submit", submitExplain);
  $("delete-token").addEventListener("click", deleteToken);
}

wire();
const saved = sessionStorage.getItem(STORAGE_KEY);
if (saved) {
  signIn(saved);
} else {
  $("admin-token").focus();
}
