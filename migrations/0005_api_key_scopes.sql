ALTER TABLE `api_keys` ADD `environment` text DEFAULT 'live' NOT NULL;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `site_id` text;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `expires_at` integer;