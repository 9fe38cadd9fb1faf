CREATE TABLE `rollup_flushes` (
	`org_id` text NOT NULL,
	`site_id` text NOT NULL,
	`flush_id` text NOT NULL,
	`batch` integer NOT NULL,
	`at` integer NOT NULL,
	PRIMARY KEY(`org_id`, `site_id`, `flush_id`, `batch`)
);
--> statement-breakpoint
CREATE INDEX `rollup_flushes_at` ON `rollup_flushes` (`org_id`,`site_id`,`at`);