CREATE TABLE `api_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`org_id` text NOT NULL,
	`name` text NOT NULL,
	`publish_key` text NOT NULL,
	`secret_key_ciphertext` text NOT NULL,
	`secret_key_iv` text NOT NULL,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL,
	`revoked_at` integer,
	`rotated_to_id` text,
	FOREIGN KEY (`org_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_keys_publish_key` ON `api_keys` (`publish_key`);--> statement-breakpoint
CREATE INDEX `api_keys_org` ON `api_keys` (`org_id`);--> statement-breakpoint
CREATE TABLE `management_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`org_id` text NOT NULL,
	`token_hash` text NOT NULL,
	`name` text NOT NULL,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL,
	`revoked_at` integer,
	FOREIGN KEY (`org_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `management_tokens_hash` ON `management_tokens` (`token_hash`);--> statement-breakpoint
CREATE INDEX `management_tokens_org` ON `management_tokens` (`org_id`);--> statement-breakpoint
CREATE TABLE `organizations` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`plan` text NOT NULL,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL
);
--> statement-breakpoint
CREATE TABLE `reflex_rules` (
	`id` text PRIMARY KEY NOT NULL,
	`org_id` text NOT NULL,
	`site_id` text,
	`tag_name` text,
	`metric` text NOT NULL,
	`metric_tag` text,
	`operator` text NOT NULL,
	`threshold` real NOT NULL,
	`action` text NOT NULL,
	`action_value` real,
	`enabled` integer DEFAULT true NOT NULL,
	`priority` integer NOT NULL,
	`cooldown_seconds` integer DEFAULT 30 NOT NULL,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL,
	`updated_at` integer,
	FOREIGN KEY (`org_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `reflex_rules_org` ON `reflex_rules` (`org_id`,`site_id`);--> statement-breakpoint
CREATE TABLE `sites` (
	`org_id` text NOT NULL,
	`site_id` text NOT NULL,
	`kill_switch` integer DEFAULT false NOT NULL,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL,
	`last_pulse_at` integer,
	PRIMARY KEY(`org_id`, `site_id`),
	FOREIGN KEY (`org_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `tags` (
	`id` text PRIMARY KEY NOT NULL,
	`org_id` text NOT NULL,
	`name` text NOT NULL,
	`max_weight` real DEFAULT 10 NOT NULL,
	`priority` integer DEFAULT 0 NOT NULL,
	`auto_created` integer DEFAULT false NOT NULL,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL,
	FOREIGN KEY (`org_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `tags_org_name` ON `tags` (`org_id`,`name`);--> statement-breakpoint
CREATE TABLE `telemetry_rollups` (
	`org_id` text NOT NULL,
	`site_id` text NOT NULL,
	`tag` text NOT NULL,
	`minute` integer NOT NULL,
	`calls` integer DEFAULT 0 NOT NULL,
	`bounced` integer DEFAULT 0 NOT NULL,
	`errors` integer DEFAULT 0 NOT NULL,
	`p50` real,
	`p95` real,
	`p99` real,
	PRIMARY KEY(`org_id`, `site_id`, `tag`, `minute`)
);
--> statement-breakpoint
CREATE TABLE `usage_monthly` (
	`org_id` text NOT NULL,
	`month` text NOT NULL,
	`calls` integer DEFAULT 0 NOT NULL,
	`bounced` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`org_id`, `month`),
	FOREIGN KEY (`org_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
