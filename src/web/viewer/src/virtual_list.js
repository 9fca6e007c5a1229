// A list that renders only the rows in view, so that a run of 100,000
// lines scrolls as smoothly as one of 100. Rows have one height; each is
// drawn by `draw(row, index)` into a reused element.

const OVERSCAN = 20;

export class VirtualList {
  constructor(rowHeight, draw) {
    this.rowHeight = rowHeight;
    this.draw = draw;
    this.count = 0;
    this.viewport = document.createElement("div");
    this.viewport.className = "viewport";
    this.viewport.tabIndex = 0;
    this.viewport.setAttribute("role", "log");
    this.spacer = document.createElement("div");
    this.spacer.className = "spacer";
    this.viewport.append(this.spacer);
    this.rows = new Map();
    this.scheduled = false;
    this.viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(this.viewport);
  }

  /** The number of rows (rows already drawn keep their content). */
  setCount(count) {
    this.count = count;
    this.spacer.style.height = `${count * this.rowHeight}px`;
    this.schedule();
  }

  /** Redraws every row in view (their content changed). */
  refresh() {
    this.redrawAll = true;
    this.schedule();
  }

  isAtBottom() {
    const { scrollTop, scrollHeight, clientHeight } = this.viewport;
    return scrollHeight - scrollTop - clientHeight < this.rowHeight * 2;
  }

  /** Scrolls as little as needed for row `index` to be in view. */
  reveal(index) {
    const top = index * this.rowHeight;
    const { scrollTop, clientHeight } = this.viewport;
    if (top < scrollTop) this.viewport.scrollTop = top;
    else if (top + this.rowHeight > scrollTop + clientHeight) this.viewport.scrollTop = top + this.rowHeight - clientHeight;
    this.refresh();
  }

  /** The first row fully in view. */
  firstInView() {
    return Math.min(this.count - 1, Math.ceil(this.viewport.scrollTop / this.rowHeight));
  }

  scrollToBottom() {
    this.viewport.scrollTop = this.viewport.scrollHeight;
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  render() {
    const { scrollTop, clientHeight } = this.viewport;
    const first = Math.max(0, Math.floor(scrollTop / this.rowHeight) - OVERSCAN);
    const last = Math.min(this.count, Math.ceil((scrollTop + clientHeight) / this.rowHeight) + OVERSCAN);
    for (const [index, row] of this.rows) {
      if (index < first || index >= last) {
        row.remove();
        this.rows.delete(index);
      }
    }
    for (let index = first; index < last; index++) {
      let row = this.rows.get(index);
      if (!row) {
        row = document.createElement("div");
        row.className = "row";
        row.style.top = `${index * this.rowHeight}px`;
        this.draw(row, index);
        this.rows.set(index, row);
        this.viewport.append(row);
      } else if (this.redrawAll) {
        this.draw(row, index);
      }
    }
    this.redrawAll = false;
  }
}
