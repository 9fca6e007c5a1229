// ANSI colour codes in messages (a build's coloured output) rendered as
// styled text. Only SGR sequences style; every other escape sequence is
// dropped. Text goes in as text nodes, so nothing in a message runs.

const ESCAPE = /\x1b\[([0-9;?]*)([A-Za-z])/g;
const BASIC = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];

/** The colour of a 256-colour index, as CSS. */
function palette(index) {
  if (index < 16) return `var(--ansi-${index < 8 ? "" : "bright-"}${BASIC[index % 8]})`;
  if (index < 232) {
    const level = (n) => (n === 0 ? 0 : 55 + n * 40);
    const cube = index - 16;
    return `rgb(${level(Math.floor(cube / 36))},${level(Math.floor(cube / 6) % 6)},${level(cube % 6)})`;
  }
  const grey = 8 + (index - 232) * 10;
  return `rgb(${grey},${grey},${grey})`;
}

/** Applies one SGR parameter list to `style`. */
function apply(style, parameters) {
  const codes = parameters === "" ? [0] : parameters.split(";").map(Number);
  for (let i = 0; i < codes.length; i++) {
    const code = codes[i];
    if (code === 0) Object.assign(style, { color: null, background: null, bold: false, dim: false, italic: false, underline: false });
    else if (code === 1) style.bold = true;
    else if (code === 2) style.dim = true;
    else if (code === 3) style.italic = true;
    else if (code === 4) style.underline = true;
    else if (code === 22) Object.assign(style, { bold: false, dim: false });
    else if (code === 23) style.italic = false;
    else if (code === 24) style.underline = false;
    else if (code >= 30 && code <= 37) style.color = palette(code - 30);
    else if (code >= 90 && code <= 97) style.color = palette(code - 90 + 8);
    else if (code === 39) style.color = null;
    else if (code >= 40 && code <= 47) style.background = palette(code - 40);
    else if (code >= 100 && code <= 107) style.background = palette(code - 100 + 8);
    else if (code === 49) style.background = null;
    else if ((code === 38 || code === 48) && codes[i + 1] === 5) {
      style[code === 38 ? "color" : "background"] = palette(Math.min(255, codes[i + 2] ?? 0));
      i += 2;
    } else if ((code === 38 || code === 48) && codes[i + 1] === 2) {
      const [r, g, b] = codes.slice(i + 2, i + 5).map((n) => Math.min(255, n || 0));
      style[code === 38 ? "color" : "background"] = `rgb(${r},${g},${b})`;
      i += 4;
    }
  }
}

function styled(text, style) {
  const plain = !style.color && !style.background && !style.bold && !style.dim && !style.italic && !style.underline;
  if (plain) return document.createTextNode(text);
  const span = document.createElement("span");
  span.textContent = text;
  if (style.color) span.style.color = style.color;
  if (style.background) span.style.background = style.background;
  if (style.bold) span.style.fontWeight = "bold";
  if (style.dim) span.style.opacity = "0.7";
  if (style.italic) span.style.fontStyle = "italic";
  if (style.underline) span.style.textDecoration = "underline";
  return span;
}

/** Nodes showing `message`, its colour codes applied. */
export function ansiNodes(message) {
  if (!message.includes("\x1b")) return [document.createTextNode(message)];
  const nodes = [];
  const style = {};
  let at = 0;
  for (const match of message.matchAll(ESCAPE)) {
    if (match.index > at) nodes.push(styled(message.slice(at, match.index), style));
    if (match[2] === "m") apply(style, match[1]);
    at = match.index + match[0].length;
  }
  if (at < message.length) nodes.push(styled(message.slice(at), style));
  return nodes;
}

/** `message` without escape sequences: what search matches and exports keep as sent. */
export const withoutEscapes = (message) => message.replace(ESCAPE, "");
