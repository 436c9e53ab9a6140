// The backfill's low-water mark: with several batches in flight, the saved position never passes a
// page that still has a user whose outcome is unknown. Pure.

interface PageProgress {
  pending: number;
  read: boolean;
  /** Where to resume once this page and all before it are confirmed. */
  resumeAfter: string | null;
}

export class PageTracker {
  private readonly pages = new Map<number, PageProgress>();
  private lowest: number;
  /** The resume position of the last page whose users, and those of every page before, are settled. */
  confirmed: { seq: number; resumeAfter: string | null } | undefined;

  constructor(firstSeq = 1) {
    this.lowest = firstSeq;
  }

  private page(seq: number): PageProgress {
    let page = this.pages.get(seq);
    if (!page) this.pages.set(seq, (page = { pending: 0, read: false, resumeAfter: null }));
    return page;
  }

  /** A user of page `seq` was handed to the uploader. */
  addUser(seq: number): void {
    this.page(seq).pending++;
  }

  /** Every user of page `seq` has been handed over; `resumeAfter` is where the next page starts. */
  pageRead(seq: number, resumeAfter: string | null): boolean {
    const page = this.page(seq);
    page.read = true;
    page.resumeAfter = resumeAfter;
    return this.advance();
  }

  /** A user of page `seq` has its outcome (delivered, or written to the failed file). */
  settleUser(seq: number): boolean {
    this.page(seq).pending--;
    return this.advance();
  }

  /** Moves the low-water mark over every leading page that is read and settled; true if it moved. */
  private advance(): boolean {
    let moved = false;
    for (let page = this.pages.get(this.lowest); page?.read && page.pending === 0; page = this.pages.get(this.lowest)) {
      this.confirmed = { seq: this.lowest, resumeAfter: page.resumeAfter };
      this.pages.delete(this.lowest);
      this.lowest++;
      moved = true;
    }
    return moved;
  }
}
