// A token's requests over the last 7 days, as a small bar chart drawn here (inline SVG,
// no library): one bar per local day, allowed stacked under denied, each with its
// numbers in a <title>; the chart has a <title> and <desc>, and a text summary beside it
// says the same in words, so nothing is told by colour or shape alone.
//
// Server strings (reason codes) go into the page as text nodes only, like everywhere on
// this page.

const SVG = "http://www.w3.org/2000/svg";
const DAYS = 7;
// The drawing's own units (the SVG scales to the dialog's width).
const WIDTH = 420;
const BAR_AREA = 100; // height of the tallest bar
const TOP = 16; // room for the count above a bar
const BOTTOM = 22; // room for the day labels
const SLOT = WIDTH / DAYS;
const BAR = 34;

const NUMBER = new Intl.NumberFormat();
const WEEKDAY = new Intl.DateTimeFormat(undefined, { weekday: "short" });
const DAY_LONG = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

/** The local midnights starting each of the last 7 days (today last), as ms. */
function dayStarts(now) {
  const starts = [];
  for (let back = DAYS - 1; back >= 0; back -= 1) {
    const day = new Date(now);
    day.setHours(0, 0, 0, 0);
    day.setDate(day.getDate() - back); // calendar days: right across a DST change
    starts.push(day.getTime());
  }
  return starts;
}

// The API counts whole UTC hours, while days start at local midnight: in a zone whose
// offset is not whole hours (Asia/Kolkata, +05:30) an hour crosses midnight. Each hour
// belongs to the local day that holds its midpoint, so it is counted once, on one day.
const HOUR = 3600 * 1000;
const HALF_HOUR = HOUR / 2;

/** The query of GET /tokens/{id}/usage for the days the chart shows (at most 7 days
 * back, within the API's default), up to now. It starts at the first hour whose midpoint
 * is on the first day: for every offset in use (whole hours, :30, :45) that is the start
 * of the UTC hour holding the first local midnight, i.e. the 30 minutes before it too. */
export function usageQuery(now) {
  const firstHour = Math.ceil((dayStarts(now)[0] - HALF_HOUR) / HOUR) * HOUR;
  const from = new Date(firstHour).toISOString();
  return new URLSearchParams({ from, to: new Date(now).toISOString() }).toString();
}

/** Sums the API's hours into days, each on the day of its midpoint:
 * [{ start, allowed, denied, reasons: {reason: n} }]. The hour now is in ends on today
 * even when its midpoint is after midnight (tomorrow is not shown). */
function byDay(hours, starts) {
  const days = starts.map((start) => ({ start, allowed: 0, denied: 0, reasons: {} }));
  for (const hour of Array.isArray(hours) ? hours : []) {
    const midpoint = Date.parse(hour.hour) + HALF_HOUR;
    let index = -1;
    starts.forEach((start, i) => {
      if (midpoint >= start) {
        index = i;
      }
    });
    if (index < 0) {
      continue; // an hour of the day before the first: usageQuery does not ask for one
    }
    const day = days[index];
    day.allowed += Number(hour.allowed) || 0;
    for (const [reason, count] of Object.entries(hour.denied || {})) {
      const number = Number(count) || 0;
      day.denied += number;
      day.reasons[reason] = (day.reasons[reason] || 0) + number;
    }
  }
  return days;
}

function svgNode(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, String(value));
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function reasonsText(reasons) {
  return Object.entries(reasons)
    .sort(([, a], [, b]) => b - a)
    .map(([reason, count]) => `${reason.replaceAll("_", " ")} ${NUMBER.format(count)}`)
    .join(", ");
}

function dayText(day) {
  const denied = day.denied > 0 ? ` (${reasonsText(day.reasons)})` : "";
  return `${DAY_LONG.format(day.start)}: ${NUMBER.format(day.allowed)} allowed, `
    + `${NUMBER.format(day.denied)} denied${denied}`;
}

/** One day's stacked bar (allowed below, denied above), its count and its label. */
function dayBar(day, index, peak) {
  const group = svgNode("g", { class: "usage-day" });
  group.append(svgNode("title", {}, dayText(day)));
  const x = index * SLOT + (SLOT - BAR) / 2;
  const baseline = TOP + BAR_AREA;
  const total = day.allowed + day.denied;
  // Any request gets at least a sliver, so a day with 1 of 10,000 is not shown as none.
  const height = (count) => (count === 0 ? 0 : Math.max(1.5, (count / peak) * BAR_AREA));
  const allowed = height(day.allowed);
  const denied = height(day.denied);
  if (allowed > 0) {
    group.append(svgNode("rect", {
      class: "usage-allowed", x, y: baseline - allowed, width: BAR, height: allowed,
    }));
  }
  if (denied > 0) {
    group.append(svgNode("rect", {
      class: "usage-denied", x, y: baseline - allowed - denied, width: BAR, height: denied,
    }));
  }
  const middle = x + BAR / 2;
  if (total > 0) {
    group.append(svgNode("text", {
      class: "usage-count", x: middle, y: baseline - allowed - denied - 4, "text-anchor": "middle",
    }, NUMBER.format(total)));
  }
  group.append(svgNode("text", {
    class: "usage-label", x: middle, y: baseline + 16, "text-anchor": "middle",
  }, `${WEEKDAY.format(day.start)} ${new Date(day.start).getDate()}`));
  return group;
}

/** The summary in words: totals, the denial reasons, and the busiest day. */
function summaryText(days) {
  const allowed = days.reduce((sum, day) => sum + day.allowed, 0);
  const denied = days.reduce((sum, day) => sum + day.denied, 0);
  if (allowed + denied === 0) {
    return "No requests in the last 7 days.";
  }
  const reasons = {};
  for (const day of days) {
    for (const [reason, count] of Object.entries(day.reasons)) {
      reasons[reason] = (reasons[reason] || 0) + count;
    }
  }
  const busiest = days.reduce((best, day) => (
    day.allowed + day.denied > best.allowed + best.denied ? day : best));
  const why = denied > 0 ? ` (${reasonsText(reasons)})` : "";
  return `${NUMBER.format(allowed + denied)} requests in the last 7 days: `
    + `${NUMBER.format(allowed)} allowed, ${NUMBER.format(denied)} denied${why}. `
    + `Busiest day: ${DAY_LONG.format(busiest.start)}, `
    + `${NUMBER.format(busiest.allowed + busiest.denied)} requests.`;
}

/** Draws the chart of `hours` (the API's answer) into `chart` and its words into
 * `summary`, for the 7 days up to `now`. */
export function renderUsage(chart, summary, hours, now) {
  const days = byDay(hours, dayStarts(now));
  const peak = Math.max(1, ...days.map((day) => day.allowed + day.denied));
  const height = TOP + BAR_AREA + BOTTOM;
  const svg = svgNode("svg", {
    class: "usage-svg",
    viewBox: `0 0 ${WIDTH} ${height}`,
    role: "img",
    "aria-labelledby": "usage-svg-title usage-svg-desc",
  });
  const title = svgNode("title", { id: "usage-svg-title" }, "Requests per day, last 7 days");
  const desc = svgNode("desc", { id: "usage-svg-desc" }, days.map(dayText).join(". "));
  const axis = svgNode("line", {
    class: "usage-axis", x1: 0, x2: WIDTH, y1: TOP + BAR_AREA + 0.5, y2: TOP + BAR_AREA + 0.5,
  });
  svg.append(title, desc, axis, ...days.map((day, index) => dayBar(day, index, peak)));
  chart.replaceChildren(svg);
  chart.hidden = false;
  summary.textContent = summaryText(days);
}

/** The chart's place while loading or after a failure: no drawing, only words. */
export function clearUsage(chart, summary, message) {
  chart.replaceChildren();
  chart.hidden = true;
  summary.textContent = message;
}
