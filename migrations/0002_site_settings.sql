ALTER TABLE `sites` ADD `pulse_interval_ms` integer;--> statement-breakpoint
ALTER TABLE `sites` ADD `lease_seconds` integer;--> statement-breakpoint
ALTER TABLE `sites` ADD `window_seconds` real;