//! Inventory and report store ports (the weekly report).
