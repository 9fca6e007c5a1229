// Building the page. Text always goes in as text (textContent), never as
// markup: a log message full of HTML or script shows as it is.

/** An element with attributes (`on*` functions become listeners) and children. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      element.className = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

/** A select of `options` ([value, label] pairs), `selected` chosen. */
export function select(label, options, selected, onchange) {
  return h(
    "label",
    {},
    label,
    " ",
    h("select", { onchange: (event) => onchange(event.target.value) }, ...options.map(([value, text]) => h("option", { value, selected: value === selected }, text))),
  );
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
