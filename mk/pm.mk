# Process managers: PM2, forever, nodemon (pinned in tools/, see docs/PROCESS-MANAGERS.md).
# PM2 and forever use their usual homes (~/.pm2, ~/.forever) unless PM2_HOME /
# FOREVER_ROOT are set. The *-down targets stop only lbserver's own apps.
PM2      := tools/node_modules/.bin/pm2
FOREVER  := tools/node_modules/.bin/forever
NODEMON  := tools/node_modules/.bin/nodemon
ECOSYSTEM := deploy/pm2/ecosystem.config.js

nodemon: export PORT := $(PORT)
nodemon: export MODE := $(MODE)
forever-a forever-b forever-down: export FOREVER_TIMEOUT := $(FOREVER_TIMEOUT)

.PHONY: pm-tools pm2-a pm2-b pm2-status pm2-down forever-a forever-b forever-status forever-down nodemon

pm-tools:
	@bash scripts/deps.d/20-npm.sh

## pm2-a: topology A under PM2 (lbserver-fork 8080, lbserver-cluster 8081), watching bin/lbserver
pm2-a: build pm-tools
	$(PM2) start $(ECOSYSTEM) --only lbserver-fork,lbserver-cluster

## pm2-b: topology B under PM2 (lbserver-fork 8080, lbserver-b 8082-8085)
pm2-b: build pm-tools
	$(PM2) start $(ECOSYSTEM) --only lbserver-fork,lbserver-b

## pm2-status: pm2 ls and the process tree under the PM2 daemon
pm2-status: pm-tools
	$(PM2) ls
	@ps -ef --forest | grep -E '[P]M2 v|[b]in/lbserver' || true

## pm2-down: delete every app of the ecosystem file (other PM2 apps are left alone)
pm2-down: pm-tools
	$(PM2) delete $(ECOSYSTEM)

## forever-a / forever-b: the topologies under forever (deploy/forever/*.json), started by
## scripts/forever.sh: lbserver's forever processes that already run are stopped first (before
## the build, whose new bin/lbserver would restart them under forever's watch), so switching
## topologies (or running a target twice) never starts a second process on a port that is
## taken; the target returns once `forever list` shows every process of the topology running
forever-a: pm-tools
	@FOREVER=$(FOREVER) scripts/forever.sh down
	@$(MAKE) --no-print-directory build
	@FOREVER=$(FOREVER) scripts/forever.sh start deploy/forever/topology-a.json

forever-b: pm-tools
	@FOREVER=$(FOREVER) scripts/forever.sh down
	@$(MAKE) --no-print-directory build
	@FOREVER=$(FOREVER) scripts/forever.sh start deploy/forever/topology-b.json

## forever-status: forever list and the process tree under the forever monitors
forever-status: pm-tools
	$(FOREVER) list
	@ps -ef --forest | grep -E '[f]orever/bin/monitor|[b]in/lbserver' || true

## forever-down: stop lbserver's forever processes (by uid; others are left alone), including
## any whose monitor is still starting; when it returns none of them is left. Every wait and
## every forever command is bounded (FOREVER_TIMEOUT seconds), so that it can never hang
forever-down: pm-tools
	@FOREVER=$(FOREVER) scripts/forever.sh down

## nodemon: rebuild and restart on every change under cmd/ internal/ (PORT=8080 MODE=FORK by default)
nodemon: pm-tools
	$(NODEMON) -- --port "$$PORT" --mode "$$MODE"
