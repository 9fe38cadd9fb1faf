CREATE TABLE `reflex_events` (
	`org_id` text NOT NULL,
	`site_id` text NOT NULL,
	`seq` text NOT NULL,
	`rule_id` text NOT NULL,
	`kind` text NOT NULL,
	`at` integer NOT NULL,
	`tag_name` text,
	`metric` text NOT NULL,
	`metric_tag` text,
	`value` real,
	`operator` text NOT NULL,
	`threshold` real NOT NULL,
	PRIMARY KEY(`org_id`, `site_id`, `seq`)
);
--> statement-breakpoint
CREATE INDEX `reflex_events_at` ON `reflex_events` (`org_id`,`at`);