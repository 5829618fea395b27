//! Where things go on the screen. Rendering and mouse handling both ask here, so a click lands
//! on what was drawn.

use ratatui::layout::Rect;

use crate::dashboard::Overview;

/// Most alert lines the panel shows (more scroll off, with a count in its title).
pub const MAX_ALERT_LINES: u16 = 8;
/// Width of a number column.
pub const NUMBER_WIDTH: u16 = 9;
/// Width of the sparkline column.
pub const SPARK_WIDTH: u16 = 24;

/// The areas of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Screen {
    /// The title bar (one line).
    pub title: Rect,
    /// The main panel, borders included: the table, or the detail charts.
    pub main: Rect,
    /// The alerts panel, borders included.
    pub alerts: Rect,
    /// The status and key-hint line.
    pub status: Rect,
}

impl Screen {
    /// Splits `area` for a panel of `alerts` alerts.
    pub fn new(area: Rect, alerts: usize) -> Screen {
        let lines = u16::try_from(alerts).unwrap_or(u16::MAX).clamp(1, MAX_ALERT_LINES) + 2;
        let alerts_h = lines.min(area.height.saturating_sub(6) / 2).max(3.min(area.height));
        let title = Rect {
            height: 1.min(area.height),
            ..area
        };
        let status_h = 1.min(area.height.saturating_sub(1));
        let status = Rect {
            y: area.bottom().saturating_sub(status_h),
            height: status_h,
            ..area
        };
        let main_h = area.height.saturating_sub(title.height + status_h + alerts_h);
        let main = Rect {
            y: title.bottom(),
            height: main_h,
            ..area
        };
        let alerts = Rect {
            y: main.bottom(),
            height: area.height.saturating_sub(title.height + status_h + main_h),
            ..area
        };
        Screen {
            title,
            main,
            alerts,
            status,
        }
    }

    /// The table inside its border: the header on the first line, rows below.
    pub fn table_inner(&self) -> Rect {
        inner(self.main)
    }
}

/// `r` without its one-cell border.
pub fn inner(r: Rect) -> Rect {
    Rect {
        x: r.x.saturating_add(1),
        y: r.y.saturating_add(1),
        width: r.width.saturating_sub(2),
        height: r.height.saturating_sub(2),
    }
}

/// Widths of the table's columns for `width` cells: an alert marker, the `rows.by` labels, the
/// number columns and (if there is room) the sparkline. The last label column takes what is
/// left. Columns are separated by one space.
pub fn widths(o: &Overview, width: u16) -> Vec<u16> {
    let labels = o.rows.by.len() as u16;
    let numbers = o.columns.len() as u16;
    let fixed_labels: u16 = (0..labels.saturating_sub(1)).map(label_width).sum();
    let gaps = labels + numbers;
    let base = 1 + fixed_labels + numbers * NUMBER_WIDTH + gaps;
    let spark = o.sparkline.is_some() && width > base + 20 + SPARK_WIDTH;
    let used = base + if spark { SPARK_WIDTH + 1 } else { 0 };
    let last = width.saturating_sub(used).max(8);
    let mut w = vec![1];
    w.extend((0..labels.saturating_sub(1)).map(label_width));
    w.push(last);
    w.extend(std::iter::repeat_n(NUMBER_WIDTH, usize::from(numbers)));
    if spark {
        w.push(SPARK_WIDTH);
    }
    w
}

fn label_width(i: u16) -> u16 {
    if i == 0 { 14 } else { 18 }
}

/// Which column (0 = first `rows.by` label, then the number columns) is at screen column `x`
/// of a table drawn in `area`; `None` on the marker, the sparkline or a gap.
pub fn column_at(o: &Overview, area: Rect, x: u16) -> Option<usize> {
    let w = widths(o, area.width);
    let n = o.rows.by.len() + o.columns.len();
    let mut left = area.x;
    for (i, width) in w.iter().enumerate() {
        if x >= left && x < left + width {
            return (1..=n).contains(&i).then(|| i - 1);
        }
        left += width + 1;
    }
    None
}

/// The first row shown so that row `selected` is visible among `rows` lines.
pub fn scroll_offset(selected: usize, rows: usize) -> usize {
    (selected + 1).saturating_sub(rows.max(1))
}

/// A rectangle of at most `w` x `h` in the middle of `area`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::Dashboards;

    #[test]
    fn areas_fill_the_screen() {
        let s = Screen::new(Rect::new(0, 0, 120, 40), 3);
        assert_eq!(s.title, Rect::new(0, 0, 120, 1));
        assert_eq!(s.alerts.height, 5);
        assert_eq!(s.status, Rect::new(0, 39, 120, 1));
        assert_eq!(s.main.height + s.alerts.height + 2, 40);
        let tiny = Screen::new(Rect::new(0, 0, 10, 3), 20);
        assert!(tiny.main.height + tiny.alerts.height + tiny.title.height + tiny.status.height <= 3);
    }

    #[test]
    fn columns_add_up_and_clicks_find_them() {
        let d = Dashboards::builtin().expect("dashboards");
        let w = widths(&d.overview, 140);
        let total: u16 = w.iter().sum::<u16>() + w.len() as u16 - 1;
        assert_eq!(total, 140);
        let area = Rect::new(1, 2, 140, 10);
        assert_eq!(column_at(&d.overview, area, 1), None, "the marker");
        assert_eq!(column_at(&d.overview, area, 3), Some(0), "service");
        let first_number = 1 + w[..4].iter().sum::<u16>() + 4;
        assert_eq!(column_at(&d.overview, area, first_number), Some(3));
        // Narrow terminals drop the sparkline.
        assert_eq!(widths(&d.overview, 80).len(), w.len() - 1);
    }

    #[test]
    fn scrolling_keeps_the_cursor_visible() {
        assert_eq!(scroll_offset(0, 10), 0);
        assert_eq!(scroll_offset(9, 10), 0);
        assert_eq!(scroll_offset(10, 10), 1);
        assert_eq!(scroll_offset(3, 0), 3);
    }
}
